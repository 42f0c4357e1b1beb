package daemon

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/secret"
)

// timedBackend is the embedded backend over real HTTP, noting when the
// answer claiming each job left and when each job's terminal update
// (complete or fail) had been answered: the span a job spends in the
// orchestrator, measured where the backend sees it.
type timedBackend struct {
	tb    testing.TB
	store *embedded.Store
	api   *embedded.Server
	url   string
	token secret.Value

	mu      sync.Mutex
	claimed map[string]time.Time
	ended   map[string]time.Time
	changed chan struct{} // a token after every terminal update
}

func newTimedBackend(tb testing.TB) *timedBackend {
	tb.Helper()
	store, err := embedded.Open(filepath.Join(tb.TempDir(), "cronium.db"))
	if err != nil {
		tb.Fatal(err)
	}
	b := &timedBackend{tb: tb, store: store, token: secret.Value("test-token-bench"),
		claimed: map[string]time.Time{}, ended: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	b.api = embedded.NewServer(store, embedded.ServerOptions{Token: b.token})
	srv := httptest.NewServer(b)
	tb.Cleanup(func() { b.api.ReleaseHeld(); srv.Close(); store.Close() })
	b.url = srv.URL
	return b
}

func (b *timedBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == backend.RouteQueue:
		cw := &capturing{ResponseWriter: w}
		b.api.ServeHTTP(cw, r)
		at := time.Now()
		var answer struct {
			Jobs []struct {
				ID string `json:"id"`
			} `json:"jobs"`
		}
		_ = json.Unmarshal(cw.body.Bytes(), &answer)
		b.mu.Lock()
		for _, j := range answer.Jobs {
			b.claimed[j.ID] = at
		}
		b.mu.Unlock()
	case r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/complete") || strings.HasSuffix(r.URL.Path, "/fail")):
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		b.api.ServeHTTP(sw, r)
		if sw.code/100 != 2 {
			return
		}
		id := strings.TrimPrefix(r.URL.Path, "/api/internal/jobs/")
		id = id[:strings.IndexByte(id, '/')]
		b.mu.Lock()
		if _, ok := b.ended[id]; !ok {
			b.ended[id] = time.Now()
		}
		b.mu.Unlock()
		select {
		case b.changed <- struct{}{}:
		default:
		}
	default:
		b.api.ServeHTTP(w, r)
	}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

// awaitEnded waits until every job in ids had its terminal update, and
// returns when the last one was answered.
func (b *timedBackend) awaitEnded(ids []string, within time.Duration) time.Time {
	b.tb.Helper()
	deadline := time.After(within)
	for {
		b.mu.Lock()
		var last time.Time
		missing := 0
		for _, id := range ids {
			at, ok := b.ended[id]
			if !ok {
				missing++
			} else if at.After(last) {
				last = at
			}
		}
		b.mu.Unlock()
		if missing == 0 {
			return last
		}
		select {
		case <-b.changed:
		case <-time.After(100 * time.Millisecond): // a token taken by an earlier wait
		case <-deadline:
			b.tb.Fatalf("%d of %d jobs had no terminal update after %s", missing, len(ids), within)
		}
	}
}

// spans is, for each of ids, the time from its claim to its terminal
// update, sorted.
func (b *timedBackend) spans(ids []string) []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]time.Duration, 0, len(ids))
	for _, id := range ids {
		out = append(out, b.ended[id].Sub(b.claimed[id]))
	}
	slices.Sort(out)
	return out
}

// submitAll queues n copies of req and returns their ids. Several
// submitters at once, as a backend's users and schedules queue jobs: the
// store commits queued calls together (see embedded's inTx), so one
// submitter waiting for each commit would bound the rate, not the store.
func (b *timedBackend) submitAll(req embedded.SubmitRequest, n int) []string {
	b.tb.Helper()
	ids := make([]string, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(submitters, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				ids[i], errs[i] = b.store.Submit(b.tb.Context(), req)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.tb.Fatal(err)
	}
	return ids
}

// submitters is how many goroutines submitAll queues jobs from.
const submitters = 8

// benchDaemon starts a daemon with the default configuration (the
// production intervals, not the tests' short ones) against b, adjusted
// by opts; it is shut down when the benchmark ends. execs nil: the
// executors the configuration makes (real Docker).
func benchDaemon(tb testing.TB, be *timedBackend, execs map[jobspec.Kind]executors.Executor, opts ...func(*config.Config)) *Daemon {
	tb.Helper()
	cfg := config.Default()
	cfg.API.URL, cfg.API.Token = be.url, be.token
	cfg.Orchestrator.StateDir = filepath.Join(tb.TempDir(), "state")
	cfg.HTTP.Listen, cfg.Admin.Listen = "", ""
	for _, o := range opts {
		o(&cfg)
	}
	d, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler), Executors: execs})
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.Start(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := d.Shutdown(); err != nil {
			tb.Error(err)
		}
	})
	return d
}
