package backend

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/orchestrator/internal/testenv"
)

// varServer is a backend's variables and context routes on a real
// ServeMux, so that escaping is checked the way a server decodes it.
type varServer struct {
	mu   sync.Mutex
	vars map[string]string // user + "\x00" + key → value
	uris []string          // request URIs as sent, escapes included
}

func (s *varServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/internal/variables/{userId}/{key}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		v, ok := s.vars[r.PathValue("userId")+"\x00"+r.PathValue("key")]
		s.mu.Unlock()
		if !ok {
			writeJSON(w, 404, `{"error":"Variable not found"}`)
			return
		}
		b, _ := json.Marshal(map[string]string{"key": r.PathValue("key"), "value": v, "updatedAt": "2025-10-22T14:03:11.512Z"})
		writeJSON(w, 200, string(b))
	})
	mux.HandleFunc("PUT /api/internal/variables/{userId}/{key}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Value *string `json:"value"`
		}
		if json.NewDecoder(r.Body).Decode(&body) != nil || body.Value == nil {
			writeJSON(w, 400, `{"error":"Value must be a string"}`)
			return
		}
		s.mu.Lock()
		s.vars[r.PathValue("userId")+"\x00"+r.PathValue("key")] = *body.Value
		s.mu.Unlock()
		writeJSON(w, 200, `{"success":true}`)
	})
	mux.HandleFunc("GET /api/internal/executions/{id}/context", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "exec_1" {
			writeJSON(w, 404, `{"error":"Execution not found"}`)
			return
		}
		writeJSON(w, 200, `{"executionId":"exec_1","event":{"id":12,"name":"Nightly"}}`)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.uris = append(s.uris, r.RequestURI)
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

func newVarServer(t *testing.T, tweak ...func(*Options)) (*Client, *recorder, *varServer) {
	vs := &varServer{vars: map[string]string{}}
	c, rec := newTestClient(t, vs.handler(), tweak...)
	return c, rec, vs
}

func TestVariablesRoundTripAndEscaping(t *testing.T) {
	c, rec, vs := newVarServer(t)
	ctx := t.Context()
	const user, key = "u 1/x", "a/b c?%"
	if _, found, err := c.GetVariable(ctx, user, key); err != nil || found {
		t.Fatalf("unset: found %v, err %v; want false, nil", found, err)
	}
	if err := c.SetVariable(ctx, user, key, "s3cret value\nline 2"); err != nil {
		t.Fatal(err)
	}
	v, found, err := c.GetVariable(ctx, user, key)
	if err != nil || !found || v != "s3cret value\nline 2" {
		t.Fatalf("get = %q, %v, %v", v, found, err)
	}
	// Another user does not see it; the same key of the server's own
	// decoding proves both segments arrived whole.
	if _, found, _ := c.GetVariable(ctx, "u 1", key); found {
		t.Fatal("another user sees the variable")
	}
	want := "/api/internal/variables/u%201%2Fx/a%2Fb%20c%3F%25"
	for i, uri := range vs.uris[:3] {
		if uri != want {
			t.Errorf("request %d to %q, want %q", i, uri, want)
		}
	}
	reqs := rec.all()
	checkRequest(t, reqs[1], "PUT", "/api/internal/variables/u 1/x/a/b c?%", "")
	if string(reqs[1].Body) != `{"value":"s3cret value\nline 2"}` {
		t.Errorf("PUT body %s", reqs[1].Body)
	}
	checkRequest(t, reqs[2], "GET", "/api/internal/variables/u 1/x/a/b c?%", "")
	if len(reqs[2].Body) != 0 {
		t.Errorf("GET with body %q", reqs[2].Body)
	}
}

func TestExecutionContext(t *testing.T) {
	c, rec, _ := newVarServer(t)
	raw, err := c.ExecutionContext(t.Context(), "exec_1")
	if err != nil || string(raw) != `{"executionId":"exec_1","event":{"id":12,"name":"Nightly"}}` {
		t.Fatalf("context = %s, %v", raw, err)
	}
	checkRequest(t, rec.all()[0], "GET", "/api/internal/executions/exec_1/context", "")
	_, err = c.ExecutionContext(t.Context(), "exec_later")
	if !errors.Is(err, ErrNotFound) || IsTransient(err) {
		t.Fatalf("before the execution exists: %v, want ErrNotFound", err)
	}
	if n := len(rec.all()); n != 2 {
		t.Fatalf("%d requests: a 404 was retried", n)
	}
}

// A 404 that is not the backend's JSON (a backend without the route)
// must not read as "unset": a counter would restart at 0 on every run.
func TestGetVariableRouteMissingIsAnError(t *testing.T) {
	c, _ := newTestClient(t, http.NotFoundHandler())
	_, found, err := c.GetVariable(t.Context(), "u", "K")
	if err == nil || found || !errors.Is(err, ErrNotFound) {
		t.Fatalf("found %v, err %v; want an ErrNotFound error", found, err)
	}
}

// The script waits: a failing backend costs it the short budget, not the
// client's budget for job reporting (2 minutes in newTestClient).
func TestScriptCallsGiveUpWithinTheShortBudget(t *testing.T) {
	calls := map[string]func(context.Context, *Client) error{
		"get": func(ctx context.Context, c *Client) error { _, _, err := c.GetVariable(ctx, "u", "K"); return err },
		"set": func(ctx context.Context, c *Client) error { return c.SetVariable(ctx, "u", "K", "v") },
		"context": func(ctx context.Context, c *Client) error {
			_, err := c.ExecutionContext(ctx, "exec_1")
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h, count := failing(t, 1<<30, func(w http.ResponseWriter) { writeJSON(w, 503, `{"error":"down"}`) })
			c, _ := newTestClient(t, h)
			start := time.Now()
			err := call(t.Context(), c)
			d := time.Since(start)
			t.Logf("after %v: %v", d.Round(time.Millisecond), err)
			var api *APIError
			if !errors.As(err, &api) || api.Status != 503 || !IsTransient(err) {
				t.Fatalf("err = %v, want a transient 503", err)
			}
			if n := count.Load(); n < 2 {
				t.Fatalf("%d attempts, want it retried", n)
			}
			// The budget is 5s; a call that waited for anything else
			// (the 2-minute budget, the test's deadline) takes far longer.
			if d < DefaultScriptCallMaxElapsed-time.Second || d > 3*DefaultScriptCallMaxElapsed {
				t.Fatalf("gave up after %v, want about %v", d, DefaultScriptCallMaxElapsed)
			}
		})
	}
}

// An attempt that hangs is cut at the budget: the back-off's own limit
// only acts between attempts, and the per-attempt timeout is a minute.
func TestScriptCallHangingAttemptIsCutAtTheBudget(t *testing.T) {
	var count atomic.Int32
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		select {
		case <-r.Context().Done():
		case <-time.After(testenv.Patience):
		}
	}), func(o *Options) { o.ScriptCallMaxElapsed = 300 * time.Millisecond })
	start := time.Now()
	_, _, err := c.GetVariable(t.Context(), "u", "K")
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("returned after %v, want about 300ms", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !IsTransient(err) {
		t.Fatalf("err = %v, want a transient deadline", err)
	}
}

func TestScriptCallsRefuseUnsendableInput(t *testing.T) {
	c, rec := newTestClient(t, http.NotFoundHandler())
	ctx := t.Context()
	tests := map[string]func() error{
		"empty user":    func() error { _, _, err := c.GetVariable(ctx, "", "K"); return err },
		"empty key":     func() error { _, _, err := c.GetVariable(ctx, "u", ""); return err },
		"dot-dot key":   func() error { return c.SetVariable(ctx, "u", "..", "v") },
		"NUL in key":    func() error { return c.SetVariable(ctx, "u", "a\x00", "v") },
		"NUL in value":  func() error { return c.SetVariable(ctx, "u", "K", "a\x00b") },
		"invalid UTF-8": func() error { return c.SetVariable(ctx, "u", "K", "a\xffb") },
		"empty exec id": func() error { _, err := c.ExecutionContext(ctx, ""); return err },
	}
	for name, call := range tests {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrBadRequest) {
				t.Fatalf("err = %v, want ErrBadRequest", err)
			}
		})
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("%d requests sent, want none", n)
	}
}

// Values may be secrets: neither one sent nor one received reaches an
// error, and the observer sees the route template, never user or key.
func TestVariableValuesNeverInErrors(t *testing.T) {
	const secretValue = "hunter2-SECRET"
	obs := &fakeObserver{}
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			writeJSON(w, 400, `{"error":"Value must be a string"}`)
			return
		}
		writeJSON(w, 200, `{"key":"K","value":{"nested":"`+secretValue+`"}}`)
	}), func(o *Options) { o.Observer = obs })
	err := c.SetVariable(t.Context(), "user-7", "K", secretValue)
	if err == nil || strings.Contains(err.Error(), secretValue) {
		t.Fatalf("set: %v", err)
	}
	_, _, err = c.GetVariable(t.Context(), "user-7", "K")
	if err == nil || strings.Contains(err.Error(), secretValue) {
		t.Fatalf("get: %v", err)
	}
	for _, o := range obs.requests {
		if o.Route != RouteVariable {
			t.Errorf("observed route %q, want the template", o.Route)
		}
	}
}
