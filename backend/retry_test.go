package backend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/secret"
)

// failing answers the first n requests with fail, then 200 {}.
func failing(t *testing.T, n int32, fail func(http.ResponseWriter)) (http.Handler, *atomic.Int32) {
	var count atomic.Int32
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if count.Add(1) <= n {
			fail(w)
			return
		}
		writeJSON(w, 200, `{"success":true}`)
	}), &count
}

func TestRetriesTransientFailures(t *testing.T) {
	tests := []struct {
		name string
		fail func(t *testing.T) func(http.ResponseWriter)
	}{
		{"503", func(*testing.T) func(http.ResponseWriter) {
			return func(w http.ResponseWriter) { writeJSON(w, 503, `{"error":"Service Unavailable"}`) }
		}},
		{"429", func(*testing.T) func(http.ResponseWriter) {
			return func(w http.ResponseWriter) { writeJSON(w, 429, `{"error":"Too Many Requests"}`) }
		}},
		{"502 html", func(*testing.T) func(http.ResponseWriter) {
			return func(w http.ResponseWriter) { w.WriteHeader(502); _, _ = w.Write([]byte("<html>bad gateway</html>")) }
		}},
		{"connection reset", func(t *testing.T) func(http.ResponseWriter) {
			return func(w http.ResponseWriter) { resetConn(t, w) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, count := failing(t, 2, tt.fail(t))
			obs := &fakeObserver{}
			c, _ := newTestClient(t, h, func(o *Options) { o.Observer = obs })
			if _, err := c.Acknowledge(t.Context(), "job_1"); err != nil {
				t.Fatalf("acknowledge: %v", err)
			}
			if got := count.Load(); got != 3 {
				t.Fatalf("%d attempts, want 3", got)
			}
			if len(obs.retries) != 2 || len(obs.requests) != 3 {
				t.Fatalf("observer saw %d retries, %d requests; want 2, 3", len(obs.retries), len(obs.requests))
			}
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	h, count := failing(t, 1, func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, 429, `{"error":"slow down"}`)
	})
	c, _ := newTestClient(t, h)
	start := time.Now()
	if _, err := c.Acknowledge(t.Context(), "job_1"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("retried after %v, want ≥ 1s (Retry-After)", d)
	}
	if count.Load() != 2 {
		t.Fatalf("%d attempts", count.Load())
	}
}

func TestNoRetryOnClientErrors(t *testing.T) {
	tests := []struct {
		status int
		is     error
	}{
		{400, ErrBadRequest},
		{401, ErrUnauthorized},
		{403, ErrNotOwner},
		{404, ErrNotFound},
		{409, ErrBadRequest},
		{422, ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			h, count := failing(t, 100, func(w http.ResponseWriter) { writeJSON(w, tt.status, `{"error":"nope"}`) })
			c, _ := newTestClient(t, h)
			err := c.CompleteJob(t.Context(), "job_1", Completion{Status: StatusCompleted})
			if !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want %v", err, tt.is)
			}
			for _, other := range []error{ErrBadRequest, ErrUnauthorized, ErrNotOwner, ErrNotFound} {
				if other != tt.is && errors.Is(err, other) {
					t.Errorf("err also matches %v", other)
				}
			}
			if IsTransient(err) {
				t.Error("IsTransient = true")
			}
			if count.Load() != 1 {
				t.Fatalf("%d attempts, want 1", count.Load())
			}
		})
	}
}

// With a budget of 200ms the client gives up long before anything else
// (the default budget of the test client, the test's context) would stop
// it: well within 30s, however slow the machine, and not by the context.
func TestRetryIsBoundedByMaxElapsed(t *testing.T) {
	h, count := failing(t, 1<<30, func(w http.ResponseWriter) { writeJSON(w, 503, `{"error":"down"}`) })
	c, _ := newTestClient(t, h, func(o *Options) { o.RetryMaxElapsed = 200 * time.Millisecond })
	ctx, cancel := context.WithTimeout(t.Context(), testRetryMaxElapsed)
	defer cancel()
	start := time.Now()
	_, err := c.Acknowledge(ctx, "job_1")
	if d := time.Since(start); d > 30*time.Second || ctx.Err() != nil {
		t.Fatalf("gave up after %v (context: %v), want about 200ms", d, ctx.Err())
	}
	var api *APIError
	if !errors.As(err, &api) || api.Status != 503 || !IsTransient(err) {
		t.Fatalf("err = %v, want a transient 503 APIError", err)
	}
	if count.Load() < 2 {
		t.Fatalf("%d attempts, want several", count.Load())
	}
}

// A context of 100ms ends the retries long before the client's budget
// (2 minutes) would: well within 30s, however slow the machine.
func TestRetryStopsWithContext(t *testing.T) {
	h, _ := failing(t, 1<<30, func(w http.ResponseWriter) { writeJSON(w, 503, `{"error":"down"}`) })
	c, _ := newTestClient(t, h)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Acknowledge(ctx, "job_1")
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("returned after %v", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v, want deadline exceeded naming the last 503", err)
	}
}

// An attempt that gets no answer is abandoned at the per-attempt timeout
// and the call retried. The first attempt hangs until the client gives it
// up; a later one that took longer than the timeout on a loaded machine is
// abandoned and retried the same way, so only the first is counted on.
func TestPerAttemptTimeout(t *testing.T) {
	var count atomic.Int32
	var abandoned atomic.Bool
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if count.Add(1) == 1 {
			select {
			case <-r.Context().Done():
				abandoned.Store(true)
			case <-time.After(testenv.Patience):
			}
			return
		}
		writeJSON(w, 200, `{"jobs":[],"count":0}`)
	}), func(o *Options) { o.RequestTimeout = 100 * time.Millisecond })
	if _, err := c.PollJobs(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if !abandoned.Load() || count.Load() < 2 {
		t.Fatalf("%d attempts, the first abandoned by the client: %v; want it abandoned and retried", count.Load(), abandoned.Load())
	}
}

func TestConnectionRefusedIsTransientNotAmbiguous(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := New(Options{BaseURL: "http://" + addr, Token: testToken, OrchestratorID: testOrch,
		RetryMaxElapsed: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = c.CompleteJob(t.Context(), "job_1", Completion{Status: StatusCompleted})
	if !IsTransient(err) || IsAmbiguous(err) {
		t.Fatalf("err = %v: transient %v ambiguous %v, want true false", err, IsTransient(err), IsAmbiguous(err))
	}
}

func TestErrorMessages(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"json error and details", 400, `{"error":"error must be a non-empty string","details":"details"}`,
			"backend: POST /api/internal/jobs/job_1/complete: 400 Bad Request: error must be a non-empty string (details)"},
		{"json error only", 404, `{"error":"Job not found"}`,
			"backend: POST /api/internal/jobs/job_1/complete: 404 Not Found: Job not found"},
		{"non-json body is cut at 200 bytes", 418, long,
			"backend: POST /api/internal/jobs/job_1/complete: 418 I'm a teapot: " + long[:200]},
		{"echoed token is redacted", 400, `{"error":"bad token ` + testToken + `"}`,
			"backend: POST /api/internal/jobs/job_1/complete: 400 Bad Request: bad token [REDACTED]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			err := c.CompleteJob(t.Context(), "job_1", Completion{Status: StatusCompleted,
				Output: CompletionOutput{Stdout: "REQUEST-BODY-SECRET"}})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %q\nwant  %q", err, tt.want)
			}
			var api *APIError
			if !errors.As(err, &api) || api.Route != RouteComplete || api.Path != "/api/internal/jobs/job_1/complete" {
				t.Fatalf("APIError = %+v", api)
			}
		})
	}
}

func TestSuccessBodyNeverInErrors(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"job":{"id":"job_1","status":"running","payload":{"privateKey":"PRIVATE-KEY-TEXT"}`) // truncated JSON
	}))
	_, err := c.Acknowledge(t.Context(), "job_1")
	if err == nil || strings.Contains(err.Error(), "PRIVATE-KEY-TEXT") || strings.Contains(err.Error(), testToken) {
		t.Fatalf("err = %v", err)
	}
}

func TestTokenNeverPrinted(t *testing.T) {
	c, err := New(Options{BaseURL: "http://localhost:1", Token: secret.Value(testToken), OrchestratorID: testOrch})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmtAll(c), fmtAll([]*Client{c})} {
		if strings.Contains(s, testToken) {
			t.Fatalf("client prints its token: %s", s)
		}
	}
}

func TestObserverSeesRouteTemplates(t *testing.T) {
	h, _ := failing(t, 1, func(w http.ResponseWriter) { writeJSON(w, 500, `{"error":"x"}`) })
	obs := &fakeObserver{}
	c, _ := newTestClient(t, h, func(o *Options) { o.Observer = obs })
	ctx := t.Context()
	_ = c.UpdateExecution(ctx, "exec_job_42_1", ExecutionUpdate{})
	_ = c.ReleaseJob(ctx, "job_42", "m")
	want := []observed{
		{RouteExecutionUpdate, "PUT", 500},
		{RouteExecutionUpdate, "PUT", 200},
		{RouteRelease, "POST", 200},
	}
	if len(obs.requests) != len(want) {
		t.Fatalf("observed %+v, want %+v", obs.requests, want)
	}
	for i := range want {
		if obs.requests[i] != want[i] || strings.Contains(obs.requests[i].Route, "42") {
			t.Errorf("request %d = %+v, want %+v", i, obs.requests[i], want[i])
		}
	}
	if len(obs.retries) != 1 || obs.retries[0] != RouteExecutionUpdate {
		t.Errorf("retries = %v", obs.retries)
	}
}

func fmtAll(v any) string { return fmt.Sprintf("%v %+v %#v", v, v, v) }
