package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func ok(context.Context) error { return nil }

func TestReadyz(t *testing.T) {
	down := func(context.Context) error { return errors.New("connection refused") }
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	tests := []struct {
		name     string
		checks   []Check
		code     int
		contains []string
		lacks    []string
	}{
		{"all ready", []Check{{"backend", ok}, {"docker", ok}}, 200, []string{"backend: ok", "docker: ok"}, nil},
		{"no checks", nil, 200, nil, nil},
		{"backend down", []Check{{"backend", down}, {"docker", ok}}, 503,
			[]string{"backend: not ready: connection refused", "docker: ok"}, nil},
		{"docker down", []Check{{"backend", ok}, {"docker", down}}, 503,
			[]string{"docker: not ready"}, []string{"backend: not ready"}},
		{"a hanging probe times out", []Check{{"docker", hang}}, 503,
			[]string{"docker: not ready: context deadline exceeded"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(Options{Gatherer: prometheus.NewRegistry(), Checks: tt.checks, CheckTimeout: 50 * time.Millisecond})
			code, body := get(t, h, "/readyz")
			if code != tt.code {
				t.Fatalf("code %d, want %d: %s", code, tt.code, body)
			}
			for _, s := range tt.contains {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q: %s", s, body)
				}
			}
			for _, s := range tt.lacks {
				if strings.Contains(body, s) {
					t.Errorf("body has %q: %s", s, body)
				}
			}
		})
	}
}

// Without a CheckTimeout each probe gets DefaultCheckTimeout, the 3 s the
// README promises: seen in the deadline of the probe's context, which was
// made during the request, so it falls DefaultCheckTimeout after a moment
// between the request's start and its end, however long that took.
func TestReadyzDefaultProbeBound(t *testing.T) {
	if DefaultCheckTimeout != 3*time.Second {
		t.Errorf("DefaultCheckTimeout %s; the README says each probe is bounded by 3 s", DefaultCheckTimeout)
	}
	var deadline time.Time
	probe := func(ctx context.Context) error {
		var ok bool
		if deadline, ok = ctx.Deadline(); !ok {
			return errors.New("no deadline")
		}
		return nil
	}
	h := New(Options{Gatherer: prometheus.NewRegistry(), Checks: []Check{{"backend", probe}}})
	before := time.Now()
	if code, body := get(t, h, "/readyz"); code != 200 {
		t.Fatalf("readyz %d %s", code, body)
	}
	after := time.Now()
	if deadline.Before(before.Add(DefaultCheckTimeout)) || deadline.After(after.Add(DefaultCheckTimeout)) {
		t.Errorf("the probe's deadline is %s after the request started and %s after it ended, want %s after a moment in between",
			deadline.Sub(before), deadline.Sub(after), DefaultCheckTimeout)
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	h := New(Options{Gatherer: reg, Checks: []Check{{"backend", func(context.Context) error {
		return errors.New("down")
	}}}})
	if code, body := get(t, h, "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz %d %q (liveness must not depend on the backend)", code, body)
	}
	if code, body := get(t, h, "/metrics"); code != 200 || !strings.Contains(body, "test_things_total 3") {
		t.Errorf("metrics %d %q", code, body)
	}
	if code, _ := get(t, h, "/admin"); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}
