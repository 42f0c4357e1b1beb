package daemon

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/executors/fake"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/secret"
)

// pickupBackend is the embedded backend over real HTTP behind a door that
// records the queue requests: when each arrived, the wait it asked for,
// which jobs its answer claimed and when that answer left, and whether
// its client had gone away by then. With hideLongPoll it drops the
// long-poll header: a backend that answers polls at once, as the real
// one does (it holds none, since no poll asks it to).
type pickupBackend struct {
	tb           testing.TB
	store        *embedded.Store
	api          *embedded.Server
	url          string
	token        secret.Value
	hideLongPoll bool

	mu      sync.Mutex
	arrived []time.Time // every request, any route
	polls   []queueRequest
	claims  map[string]claim // by job id
	claimed chan string      // job ids, as their claim's answer leaves
}

type queueRequest struct {
	arrived  time.Time
	wait     string // the wait parameter; "" none
	answered bool
	gone     bool // the client went away before the answer: a poll it cancelled
}

type claim struct {
	at   time.Time
	poll int // index in polls of the request that claimed it
}

func newPickupBackend(tb testing.TB, hideLongPoll bool) *pickupBackend {
	tb.Helper()
	store, err := embedded.Open(filepath.Join(tb.TempDir(), "cronium.db"))
	if err != nil {
		tb.Fatal(err)
	}
	b := &pickupBackend{tb: tb, store: store, token: secret.Value("test-token-pickup"), hideLongPoll: hideLongPoll,
		claims: map[string]claim{}, claimed: make(chan string, 1000)}
	b.api = embedded.NewServer(store, embedded.ServerOptions{Token: b.token})
	srv := httptest.NewServer(b)
	tb.Cleanup(func() { b.api.ReleaseHeld(); srv.Close(); store.Close() })
	b.url = srv.URL
	return b
}

func (b *pickupBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.arrived = append(b.arrived, time.Now())
	b.mu.Unlock()
	if r.URL.Path != backend.RouteQueue {
		b.api.ServeHTTP(w, r)
		return
	}
	b.mu.Lock()
	i := len(b.polls)
	b.polls = append(b.polls, queueRequest{arrived: time.Now(), wait: r.URL.Query().Get(backend.QueryWait)})
	b.mu.Unlock()
	cw := &capturing{ResponseWriter: w, hide: b.hideLongPoll}
	b.api.ServeHTTP(cw, r)
	at := time.Now()
	var answer struct {
		Jobs []struct {
			ID string `json:"id"`
		} `json:"jobs"`
	}
	_ = json.Unmarshal(cw.body.Bytes(), &answer)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.polls[i].answered, b.polls[i].gone = true, r.Context().Err() != nil
	for _, j := range answer.Jobs {
		b.claims[j.ID] = claim{at: at, poll: i}
		b.claimed <- j.ID
	}
}

// capturing keeps a copy of the body and can drop the long-poll header.
type capturing struct {
	http.ResponseWriter
	hide bool
	body bytes.Buffer
}

func (c *capturing) WriteHeader(code int) {
	if c.hide {
		c.Header().Del(backend.HeaderLongPoll)
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *capturing) Write(p []byte) (int, error) {
	c.body.Write(p)
	return c.ResponseWriter.Write(p)
}

func (b *pickupBackend) requests() []queueRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.polls)
}

// held is the index of the queue request being held (asked for a wait
// and not answered yet), or -1.
func (b *pickupBackend) held() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, p := range b.polls {
		if p.wait != "" && !p.answered {
			return i
		}
	}
	return -1
}

// awaitClaim waits until the job's claim was answered.
func (b *pickupBackend) awaitClaim(id string) claim {
	b.tb.Helper()
	deadline := time.After(testenv.Patience)
	for {
		select {
		case got := <-b.claimed:
			if got == id {
				b.mu.Lock()
				defer b.mu.Unlock()
				return b.claims[id]
			}
		case <-deadline:
			b.tb.Fatalf("job %s was not claimed", id)
		}
	}
}

// startDaemon runs a daemon on the fake executor against b.
func (b *pickupBackend) startDaemon(t *testing.T, opts ...stackOption) *stack {
	s := &stack{t: t, store: b.store, url: b.url, token: b.token}
	s.start(map[jobspec.Kind]executors.Executor{jobspec.KindContainer: fake.New()}, opts...)
	return s
}

// Against the embedded backend, an idle daemon holds a poll there, and a
// job submitted meanwhile is claimed by that very poll: no poll after the
// submit was needed. Shutting down cancels the held poll.
func TestHeldPollClaimsASubmittedJob(t *testing.T) {
	b := newPickupBackend(t, false)
	s := b.startDaemon(t)
	var held int
	testenv.Eventually(t, testenv.Patience, "a held poll", func() bool { held = b.held(); return held >= 0 })
	if w := b.requests()[held].wait; w != "50" { // backend.MaxLongPollWait
		t.Fatalf("the held poll asked for wait=%q, want 50", w)
	}
	id := s.submit(bashJob("x", nil))
	if c := b.awaitClaim(id); c.poll != held {
		t.Fatalf("claimed by queue request #%d, want the one held when it was submitted (#%d)", c.poll, held)
	}
	v := s.wait(id, testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	testenv.Eventually(t, testenv.Patience, "the next held poll", func() bool { held = b.held(); return held >= 0 })
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	// The backend sees the poll's connection close a moment after stop
	// returns; gone says the daemon left before the poll was answered.
	var p queueRequest
	testenv.Eventually(t, testenv.Patience, "the held poll to see its caller gone", func() bool {
		p = b.requests()[held]
		return p.answered
	})
	if !p.gone {
		t.Fatalf("held poll at shutdown: %+v; want it cancelled by the daemon, not waited for", p)
	}
}

// Against a backend that does not announce long polling (the real one),
// no poll asks for a wait, and an idle daemon polls every poll interval.
func TestIntervalPollingWithoutTheLongPollHeader(t *testing.T) {
	b := newPickupBackend(t, true)
	s := b.startDaemon(t)
	testenv.Eventually(t, testenv.Patience, "5 polls", func() bool { return len(b.requests()) >= 5 })
	idle := b.requests()
	id := s.submit(bashJob("x", nil))
	b.awaitClaim(id)
	s.assertOneTerminalUpdate(t, s.wait(id, testenv.Patience))
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	for i, p := range b.requests() {
		if p.wait != "" {
			t.Fatalf("poll #%d asked for wait=%s", i, p.wait)
		}
	}
	// While idle, each empty answer was followed by a pause of the
	// interval (a lower bound: timers never fire early).
	interval := daemontest.Config(t, b.url, b.token).Jobs.PollInterval
	for i := 1; i < len(idle); i++ {
		if gap := idle[i].arrived.Sub(idle[i-1].arrived); gap < interval {
			t.Fatalf("idle poll #%d came %v after the one before, less than the interval %v", i, gap, interval)
		}
	}
}

// BenchmarkPickup measures enqueue→claim latency: from the call that
// submits a job to the moment the backend's answer claiming it leaves,
// over real HTTP against the embedded backend, the daemon otherwise idle
// (fake executor), with the default configuration. "long-poll" is the
// embedded backend as it is; "interval" hides its long-poll header, as
// against the real backend: polls every jobs.poll_interval (2s). Each job
// is submitted at a random moment within one poll interval of the last
// claim. Percentiles need samples: run with a count, e.g.
//
//	go test -run '^$' -bench Pickup -benchtime 40x ./daemon/
//
// "idle" counts the requests of an idle daemon instead (benchIdleTraffic).
func BenchmarkPickup(b *testing.B) {
	for _, mode := range []struct {
		name     string
		longPoll bool
	}{{"long-poll", true}, {"interval", false}} {
		b.Run(mode.name, func(b *testing.B) {
			be := newPickupBackend(b, !mode.longPoll)
			s := benchStack(b, be)
			testenv.Eventually(b, testenv.Patience, "the first poll", func() bool {
				return mode.longPoll && be.held() >= 0 || !mode.longPoll && len(be.requests()) > 0
			})
			interval := config.Default().Jobs.PollInterval
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				time.Sleep(rand.N(interval))
				b.StartTimer()
				start := time.Now()
				id, err := s.Submit(b.Context(), bashJob("x", nil))
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, be.awaitClaim(id).at.Sub(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
			b.ReportMetric(ms(percentile(lat, 95)), "p95-ms")
		})
	}
	b.Run("idle", benchIdleTraffic)
}

// idleWindow is how long BenchmarkPickup/idle watches an idle daemon: one
// jobs.orphan_check_interval (1m by default), whose check is idle traffic
// too.
const idleWindow = time.Minute

// benchIdleTraffic counts the requests an idle daemon (default
// configuration, fake executor, no job) sends the embedded backend over
// idleWindow, once its first poll is held, whatever b.N: req/20s.
func benchIdleTraffic(b *testing.B) {
	be := newPickupBackend(b, false)
	benchStack(b, be)
	testenv.Eventually(b, testenv.Patience, "the first held poll", func() bool { return be.held() >= 0 })
	start := time.Now()
	time.Sleep(idleWindow)
	be.mu.Lock()
	n := 0
	for _, at := range be.arrived {
		if !at.Before(start) && at.Before(start.Add(idleWindow)) {
			n++
		}
	}
	be.mu.Unlock()
	b.ReportMetric(float64(n)*float64(20*time.Second)/float64(idleWindow), "req/20s")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile of sorted samples (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

// benchStack starts a daemon with the default configuration (its poll
// interval included) against be, stopped when the benchmark ends.
func benchStack(b *testing.B, be *pickupBackend) *embedded.Store {
	b.Helper()
	cfg := config.Default()
	cfg.API.URL, cfg.API.Token = be.url, be.token
	cfg.Orchestrator.StateDir = filepath.Join(b.TempDir(), "state")
	cfg.HTTP.Listen, cfg.Admin.Listen = "", ""
	d, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler),
		Executors: map[jobspec.Kind]executors.Executor{jobspec.KindContainer: fake.New()}})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := d.Shutdown(); err != nil {
			b.Error(err)
		}
	})
	return be.store
}
