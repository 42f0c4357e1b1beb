package embedded

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/secret"
)

const testToken = "internal-token-xyz"

// env is an embedded backend served over real HTTP, with a controllable
// clock.
type env struct {
	t      *testing.T
	path   string
	store  *Store
	srv    *httptest.Server
	public *PublicClient
	clock  *clock
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Every reading moves on a millisecond so that creation order is
	// total even at the store's millisecond precision.
	c.now = c.now.Add(time.Millisecond)
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "cronium.db"),
		clock: &clock{now: time.Date(2025, 10, 22, 14, 3, 11, 0, time.UTC)}}
	e.open()
	t.Cleanup(func() { e.close() })
	return e
}

func (e *env) open() {
	e.t.Helper()
	st, err := Open(e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = st
	e.srv = httptest.NewServer(NewServer(st, ServerOptions{Token: testToken, Now: e.clock.Now}))
	e.public = NewPublicClient(e.srv.URL, "")
}

func (e *env) close() {
	if e.srv != nil {
		e.srv.Close()
		e.srv = nil
	}
	if e.store != nil {
		if err := e.store.Close(); err != nil {
			e.t.Error(err)
		}
		e.store = nil
	}
}

// client is an orchestrator's backend client for this env.
func (e *env) client(orchID string) *backend.Client {
	e.t.Helper()
	// Generous: a request that outlived its timeout on a loaded machine
	// would be retried, and the retry would change what tests count.
	c, err := backend.New(backend.Options{BaseURL: e.srv.URL, Token: secret.Value(testToken), OrchestratorID: orchID,
		RequestTimeout: time.Minute, RetryMaxElapsed: testenv.Patience})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) submit(req SubmitRequest) string {
	e.t.Helper()
	id, err := e.public.Submit(e.t.Context(), req)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) job(id string) JobView {
	e.t.Helper()
	v, err := e.public.Job(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func bashJob(content string) SubmitRequest {
	return SubmitRequest{Script: &backend.Script{Type: backend.ScriptBash, Content: content}}
}

// raw sends one request as given (no client niceties) and returns the
// status and the decoded JSON body.
func (e *env) raw(method, path, body string, headers map[string]string) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("X-Orchestrator-ID", "o1")
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(data) > 0 && data[0] == '{' {
		if err := json.Unmarshal(data, &out); err != nil {
			e.t.Fatalf("%s %s: body %q: %v", method, path, data, err)
		}
	} else {
		out = map[string]any{"_raw": string(data)}
	}
	return resp.StatusCode, out
}

// claim polls as orchID and fails the test unless exactly want jobs come.
func (e *env) claim(orchID string, want int) []backend.Job {
	e.t.Helper()
	jobs, err := e.client(orchID).PollJobs(e.t.Context(), 100)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(jobs) != want {
		e.t.Fatalf("claimed %d jobs, want %d", len(jobs), want)
	}
	return jobs
}

func mustRequest(t *testing.T, method, path, auth string) *http.Request {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return req
}
