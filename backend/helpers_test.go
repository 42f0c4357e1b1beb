package backend

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/cronium/orchestrator/secret"
)

const (
	testToken = "tok-very-secret-123"
	testOrch  = "orch-1"
)

// recorded is one request as the test server saw it.
type recorded struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// recorder wraps a handler and keeps every request it served.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
	next http.Handler
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
	rec.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec.next.ServeHTTP(w, r)
}

func (rec *recorder) all() []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]recorded(nil), rec.reqs...)
}

// Bounds of newTestClient's client: generous, so that on a loaded machine
// no attempt times out and no retry budget runs out unless a test says so
// (with shorter ones of its own): tests count attempts.
const (
	testRequestTimeout  = time.Minute
	testRetryMaxElapsed = 2 * time.Minute
)

// newTestClient serves h on a test server and returns a client for it with
// millisecond back-off, so retry tests do not wait.
func newTestClient(t *testing.T, h http.Handler, tweak ...func(*Options)) (*Client, *recorder) {
	t.Helper()
	rec := &recorder{next: h}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	opts := Options{
		BaseURL:         srv.URL,
		Token:           secret.Value(testToken),
		OrchestratorID:  testOrch,
		RequestTimeout:  testRequestTimeout,
		RetryMaxElapsed: testRetryMaxElapsed,
	}
	for _, f := range tweak {
		f(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c.newBackOff = func() backoff.BackOff { return backoff.NewConstantBackOff(5 * time.Millisecond) }
	return c, rec
}

// resetConn answers a request by resetting the TCP connection: the client
// sees a transport error after it sent the request.
func resetConn(t *testing.T, w http.ResponseWriter) {
	t.Helper()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST instead of FIN
	}
	_ = conn.Close()
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// fakeObserver records what the client reports.
type fakeObserver struct {
	mu       sync.Mutex
	requests []observed
	retries  []string
}

type observed struct {
	Route, Method string
	Status        int
}

func (o *fakeObserver) ObserveRequest(route, method string, status int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests = append(o.requests, observed{route, method, status})
}

func (o *fakeObserver) ObserveRetry(route string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.retries = append(o.retries, route)
}
