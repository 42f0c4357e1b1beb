// Package httpapi serves what runs on http.listen for Prometheus and
// orchestration: /metrics, /healthz (the process answers) and /readyz
// (the orchestrator can do its work: the backend answers, and Docker does
// when container jobs are enabled).
package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one thing readiness depends on. Probe must honour ctx.
type Check struct {
	Name  string // named in the 503 body: "backend", "docker", ...
	Probe func(ctx context.Context) error
}

// DefaultCheckTimeout bounds each readiness probe unless
// Options.CheckTimeout says otherwise: below Prometheus's and Kubernetes'
// usual probe timeouts.
const DefaultCheckTimeout = 3 * time.Second

// Options configure the handler.
type Options struct {
	Gatherer prometheus.Gatherer
	Checks   []Check
	// CheckTimeout bounds each probe; default DefaultCheckTimeout.
	CheckTimeout time.Duration
}

// New returns the handler of /metrics, /healthz and /readyz.
func New(opts Options) http.Handler {
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = DefaultCheckTimeout
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		// A slow scrape must not pile up: Prometheus times out at 10s by
		// default.
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		serveReady(w, r, opts)
	})
	return mux
}

// serveReady runs every check at once and answers 200 when all pass, 503
// naming each failing component otherwise.
func serveReady(w http.ResponseWriter, r *http.Request, opts Options) {
	errs := make([]error, len(opts.Checks))
	var wg sync.WaitGroup
	for i, c := range opts.Checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), opts.CheckTimeout)
			defer cancel()
			errs[i] = c.Probe(ctx)
		})
	}
	wg.Wait()
	var b strings.Builder
	failed := false
	for i, c := range opts.Checks {
		if errs[i] != nil {
			failed = true
			fmt.Fprintf(&b, "%s: not ready: %v\n", c.Name, errs[i])
		} else {
			fmt.Fprintf(&b, "%s: ok\n", c.Name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if failed {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprint(w, b.String())
}
