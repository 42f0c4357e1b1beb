package embedded

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/secret"
)

// holdEnv is an embedded backend on the wall clock (held requests wait on
// real timers), which counts the output requests it serves.
type holdEnv struct {
	t       *testing.T
	store   *Store
	server  *Server
	url     string
	public  *PublicClient
	outputs atomic.Int64
}

func newHoldEnv(t *testing.T) *holdEnv {
	t.Helper()
	st, err := Open(filepath.Join(t.TempDir(), "cronium.db"))
	if err != nil {
		t.Fatal(err)
	}
	e := &holdEnv{t: t, store: st, server: NewServer(st, ServerOptions{Token: testToken})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/output") {
			e.outputs.Add(1)
		}
		e.server.ServeHTTP(w, r)
	}))
	// ReleaseHeld first, as RegisterOnShutdown does: Close waits for
	// requests in flight.
	t.Cleanup(func() { e.server.ReleaseHeld(); srv.Close(); st.Close() })
	e.url, e.public = srv.URL, NewPublicClient(srv.URL, "")
	return e
}

func (e *holdEnv) client(orchID string) *backend.Client {
	e.t.Helper()
	c, err := backend.New(backend.Options{BaseURL: e.url, Token: secret.Value(testToken), OrchestratorID: orchID,
		RequestTimeout: time.Minute, RetryMaxElapsed: testenv.Patience})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *holdEnv) submit(req SubmitRequest) string {
	e.t.Helper()
	id, err := e.store.Submit(e.t.Context(), req)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// held waits until n requests are held.
func (e *holdEnv) held(n int64) {
	e.t.Helper()
	testenv.Eventually(e.t, testenv.Patience, fmt.Sprintf("%d held requests", n), func() bool {
		return e.server.holding.Load() == n
	})
}

type pollResult struct {
	p   backend.Polled
	err error
	at  time.Time
}

// poll starts a poll asking for wait and returns where its result comes.
func (e *holdEnv) poll(ctx context.Context, orchID string, wait time.Duration) <-chan pollResult {
	c := e.client(orchID)
	done := make(chan pollResult, 1)
	go func() {
		p, err := c.Poll(ctx, 5, wait)
		done <- pollResult{p, err, time.Now()}
	}()
	return done
}

func (e *holdEnv) result(ch <-chan pollResult) pollResult {
	e.t.Helper()
	select {
	case r := <-ch:
		if r.err != nil && e.t.Context().Err() == nil {
			e.t.Fatalf("poll: %v", r.err)
		}
		return r
	case <-time.After(testenv.Patience):
		e.t.Fatal("the poll did not return")
		return pollResult{}
	}
}

func TestQueueAnnouncesLongPolling(t *testing.T) {
	e := newHoldEnv(t)
	for _, wait := range []time.Duration{0, 100 * time.Millisecond} {
		r := e.result(e.poll(t.Context(), "o1", wait))
		if r.p.MaxWait != MaxWait {
			t.Fatalf("wait %v: the answer announced %v, want %v", wait, r.p.MaxWait, MaxWait)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/api/internal/jobs/queue?batchSize=1&wait=-1", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("X-Orchestrator-ID", "o1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get(backend.HeaderLongPoll) != "60" {
		t.Fatalf("wait=-1: %s, header %q", resp.Status, resp.Header.Get(backend.HeaderLongPoll))
	}
}

func TestParseWait(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"", 0, false}, {"0", 0, false}, {"25", 25 * time.Second, false}, {"0.25", 250 * time.Millisecond, false},
		{"3600", MaxWait, false}, {"-1", 0, true}, {"NaN", 0, true}, {"25s", 0, true}, {"+Inf", MaxWait, false},
	}
	for _, tt := range tests {
		got, err := parseWait(tt.in)
		if got != tt.want || (err != nil) != tt.bad {
			t.Errorf("parseWait(%q) = %v, %v; want %v, bad %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

// A job submitted while a poll is held is claimed by that poll.
func TestHeldPollClaimsAJobSubmittedMeanwhile(t *testing.T) {
	e := newHoldEnv(t)
	ch := e.poll(t.Context(), "o1", 25*time.Second)
	e.held(1)
	id := e.submit(bashJob("true"))
	r := e.result(ch)
	if len(r.p.Jobs) != 1 || r.p.Jobs[0].ID != id {
		t.Fatalf("claimed %+v, want %s", r.p.Jobs, id)
	}
	e.held(0)
}

// Held polls of several orchestrators: one job, one claim; the others
// stay held (a claim that found nothing does not end a held poll).
func TestHeldPollsShareAJobOnce(t *testing.T) {
	e := newHoldEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	chs := []<-chan pollResult{e.poll(ctx, "o1", 25*time.Second), e.poll(ctx, "o2", 25*time.Second),
		e.poll(ctx, "o3", 25*time.Second)}
	e.held(3)
	e.submit(bashJob("true"))
	// One poll answers with the job; only then are the other two known to
	// stay held (a count of held requests alone can be caught while a
	// woken poll is still looking).
	all := make(chan pollResult, len(chs))
	for _, ch := range chs {
		go func() { all <- <-ch }()
	}
	first := e.result(all)
	if len(first.p.Jobs) != 1 {
		t.Fatalf("the first answer claimed %d jobs, want 1", len(first.p.Jobs))
	}
	e.held(2)
	cancel()
	for range len(chs) - 1 {
		if r := <-all; len(r.p.Jobs) != 0 {
			t.Fatalf("another poll claimed %d jobs of one", len(r.p.Jobs))
		}
	}
}

// A job scheduled later wakes a held poll when it falls due (a timer set
// to its time, not a sleep loop): if it did not, the poll would end empty.
func TestHeldPollWakesWhenAScheduledJobFallsDue(t *testing.T) {
	e := newHoldEnv(t)
	at := time.Now().Add(200 * time.Millisecond)
	id := e.submit(SubmitRequest{Script: bashJob("true").Script, ScheduledFor: &at})
	r := e.result(e.poll(t.Context(), "o1", 25*time.Second))
	if len(r.p.Jobs) != 1 || r.p.Jobs[0].ID != id {
		t.Fatalf("claimed %+v, want %s", r.p.Jobs, id)
	}
	if r.at.Before(at.Truncate(time.Millisecond)) {
		t.Fatalf("claimed at %v, before it was due (%v)", r.at, at)
	}
}

// A cancel or a release is a change too: a held poll looks again (a
// cancelled job is not claimable; a released one is).
func TestHeldPollSeesReleasedJobs(t *testing.T) {
	e := newHoldEnv(t)
	id := e.submit(bashJob("true"))
	if jobs, err := e.client("o1").PollJobs(t.Context(), 1); err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v, %v", jobs, err)
	}
	ch := e.poll(t.Context(), "o2", 25*time.Second)
	e.held(1)
	if err := e.client("o1").ReleaseJob(t.Context(), id, "test"); err != nil {
		t.Fatal(err)
	}
	if r := e.result(ch); len(r.p.Jobs) != 1 || r.p.Jobs[0].ID != id {
		t.Fatalf("claimed %+v, want the released %s", r.p.Jobs, id)
	}
}

// The wait passes: the normal empty answer, not before the wait.
func TestHeldPollEndsEmptyWhenTheWaitPasses(t *testing.T) {
	e := newHoldEnv(t)
	start := time.Now()
	r := e.result(e.poll(t.Context(), "o1", 300*time.Millisecond))
	if len(r.p.Jobs) != 0 || r.at.Sub(start) < 300*time.Millisecond {
		t.Fatalf("after %v: %+v", r.at.Sub(start), r.p)
	}
	e.held(0)
}

// A client that goes away ends its held poll: nothing is left holding,
// and a job submitted afterwards stays queued.
func TestHeldPollEndsWhenTheClientGoesAway(t *testing.T) {
	e := newHoldEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	ch := e.poll(ctx, "o1", 25*time.Second)
	e.held(1)
	cancel()
	<-ch
	e.held(0)
	id := e.submit(bashJob("true"))
	if v, err := e.store.Job(t.Context(), id); err != nil || v.Status != backend.StatusQueued {
		t.Fatalf("job %+v, %v: want queued", v, err)
	}
}

// ReleaseHeld (the HTTP server shutting down) answers held polls at once
// and holds no new ones.
func TestReleaseHeldAnswersHeldPolls(t *testing.T) {
	e := newHoldEnv(t)
	ch := e.poll(t.Context(), "o1", 25*time.Second)
	e.held(1)
	e.server.ReleaseHeld()
	if r := e.result(ch); len(r.p.Jobs) != 0 {
		t.Fatalf("released poll: %+v", r.p)
	}
	e.held(0)
	ch = e.poll(t.Context(), "o1", 25*time.Second)
	for {
		select {
		case <-ch:
			return
		default:
		}
		if e.server.holding.Load() > 0 {
			t.Fatal("a poll was held after ReleaseHeld")
		}
		time.Sleep(time.Millisecond)
	}
}

// An output request with after and wait is held until the job's version
// moves on; an after that is already old answers at once.
func TestOutputWaitsForTheNextVersion(t *testing.T) {
	e := newHoldEnv(t)
	ctx := t.Context()
	id := e.submit(bashJob("true"))
	c := e.client("o1")
	j, err := c.PollJobs(ctx, 1)
	if err != nil || len(j) != 1 {
		t.Fatalf("claim: %v, %v", j, err)
	}
	mustDo(t, c.CreateExecution(ctx, "exec_1", backend.ExecutionCreate{JobID: id}))
	first, err := e.public.Output(ctx, id)
	if err != nil || first.Version == 0 {
		t.Fatalf("output %+v, %v", first, err)
	}
	done := make(chan OutputView, 1)
	go func() {
		o, err := e.public.OutputAfter(ctx, id, first.Version, 25*time.Second)
		if err != nil {
			t.Error(err)
		}
		done <- o
	}()
	e.held(1)
	snap := "hello\n"
	mustDo(t, c.UpdateExecution(ctx, "exec_1", backend.ExecutionUpdate{Output: &snap}))
	o := <-done
	if o.Stdout != snap || o.Version <= first.Version {
		t.Fatalf("held output answered %+v (first version %d)", o, first.Version)
	}
	again, err := e.public.OutputAfter(ctx, id, first.Version, 25*time.Second)
	if err != nil || again.Version != o.Version {
		t.Fatalf("an old after: %+v, %v", again, err)
	}
	for _, q := range []string{"after=-1", "after=x", "after=1&wait=soon"} {
		resp, err := http.Get(e.url + "/api/jobs/" + id + "/output?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %s, want 400", q, resp.Status)
		}
	}
}

// Follow asks again only when something changed: one held request per
// change, each line printed once.
func TestFollowHoldsBetweenChanges(t *testing.T) {
	e := newHoldEnv(t)
	ctx := t.Context()
	id := e.submit(bashJob("true"))
	c := e.client("o1")
	if j, err := c.PollJobs(ctx, 1); err != nil || len(j) != 1 {
		t.Fatalf("claim: %v, %v", j, err)
	}
	mustDo(t, c.CreateExecution(ctx, "exec_1", backend.ExecutionCreate{JobID: id}))
	mustDo(t, c.UpdateJobStatus(ctx, id, backend.StatusRunning, backend.StatusDetails{}))

	var stdout, stderr syncBuilder
	followed := make(chan error, 1)
	go func() {
		_, err := e.public.Follow(ctx, id, time.Hour, &stdout, &stderr) // an interval would stall the test
		followed <- err
	}()
	e.held(1)
	var out strings.Builder
	const changes = 5
	for i := 1; i <= changes; i++ {
		fmt.Fprintf(&out, "line %d\n", i)
		snap := out.String()
		mustDo(t, c.UpdateExecution(ctx, "exec_1", backend.ExecutionUpdate{Output: &snap}))
		testenv.Eventually(t, testenv.Patience, "line "+fmt.Sprint(i), func() bool {
			return stdout.String() == snap && e.server.holding.Load() == 1
		})
	}
	if n := e.outputs.Load(); n != changes+2 {
		t.Fatalf("%d output requests for %d changes, want %d (a first, then one held per change)", n, changes, changes+2)
	}
	mustDo(t, c.CompleteJob(ctx, id, backend.Completion{Status: backend.StatusCompleted,
		Output: backend.CompletionOutput{Stdout: out.String()}}))
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	if stdout.String() != out.String() || stderr.String() != "" || e.outputs.Load() != changes+2 {
		t.Fatalf("printed %q / %q after %d requests", stdout.String(), stderr.String(), e.outputs.Load())
	}
}

// syncBuilder is a strings.Builder safe to read while Follow writes.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuilder) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuilder) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
