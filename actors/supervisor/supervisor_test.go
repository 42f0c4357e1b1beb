package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/job"
	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/actors/logactor"
	"github.com/cronium/orchestrator/actors/poller"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/executors/fake"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/messages"
)

// recordingBackend answers every call and counts the terminal ones. It
// never hands out jobs: the tests give them to the supervisor directly, to
// control exactly when each message arrives.
type recordingBackend struct {
	mu        sync.Mutex
	terminal  map[string]int
	releases  map[string]int
	completed map[string]backend.Completion
}

func newRecordingBackend() *recordingBackend {
	return &recordingBackend{terminal: map[string]int{}, releases: map[string]int{}, completed: map[string]backend.Completion{}}
}

func (b *recordingBackend) Poll(context.Context, int, time.Duration) (backend.Polled, error) {
	return backend.Polled{}, nil
}
func (b *recordingBackend) OrphanedJobs(context.Context) ([]backend.JobRow, error) { return nil, nil }
func (b *recordingBackend) CreateExecution(context.Context, string, backend.ExecutionCreate) error {
	return nil
}
func (b *recordingBackend) UpdateJobStatus(context.Context, string, string, backend.StatusDetails) error {
	return nil
}
func (b *recordingBackend) UpdateExecution(context.Context, string, backend.ExecutionUpdate) error {
	return nil
}
func (b *recordingBackend) Acknowledge(_ context.Context, id string) (backend.JobRow, error) {
	return backend.JobRow{ID: id, Status: backend.StatusRunning}, nil
}
func (b *recordingBackend) ServerCredentials(context.Context, string) (backend.ServerDetails, error) {
	return backend.ServerDetails{}, nil
}
func (b *recordingBackend) CompleteJob(_ context.Context, id string, c backend.Completion) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.terminal[id]++
	b.completed[id] = c
	return nil
}
func (b *recordingBackend) FailJob(_ context.Context, id, _ string, _ int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.terminal[id]++
	return nil
}
func (b *recordingBackend) ReleaseJob(_ context.Context, id, _ string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releases[id]++
	return nil
}

func (b *recordingBackend) counts(id string) (terminal, releases int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.terminal[id], b.releases[id]
}

func startSupervisor(t *testing.T, b *recordingBackend, execs ...map[jobspec.Kind]executors.Executor) (*actor.Engine, *actor.PID) {
	t.Helper()
	byKind := map[jobspec.Kind]executors.Executor{jobspec.KindContainer: fake.New()}
	if len(execs) > 0 {
		byKind = execs[0]
	}
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	pid := Spawn(engine, Deps{
		Backend:   b,
		Executors: byKind,
		Clock:     kit.RealClock{},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: Settings{OrchestratorID: "orch-test", OutputMaxBytes: 1 << 20, MaxRestarts: 3,
			RestartWindow: time.Minute,
			Poll:          poller.Settings{Capacity: 4, PollInterval: time.Hour, MaxBackoff: time.Hour},
			Job: job.Settings{DefaultTimeout: time.Minute, CancelCheckInterval: time.Hour,
				BackoffInitial: 10 * time.Millisecond, BackoffMax: 10 * time.Millisecond, FinalizeTimeout: time.Second},
			Logs: logactor.Settings{BatchLines: 100, BatchBytes: 1 << 16, BatchInterval: time.Second}},
	})
	t.Cleanup(func() { stopTree(t, engine, pid) })
	return engine, pid
}

// stopTree poisons the supervisor once none of its children is on its way
// out, then waits for the calls they started. hollywood v1.0.5 hangs a
// parent's Poison on a child caught between stopping its inbox and leaving
// the registry: the pill lands in an inbox nobody reads. (The daemon bounds
// its own Poison for the same reason.)
func stopTree(t *testing.T, engine *actor.Engine, sup *actor.PID) {
	t.Helper()
	testenv.Eventually(t, testenv.Patience, "the supervisor's children to finish stopping", func() bool {
		v, err := engine.Request(sup, messages.ListActors{}, testenv.Patience).Result()
		if err != nil {
			return false
		}
		for _, a := range v.(messages.ActorTree).Actors {
			if a.State == "stopping" {
				return false
			}
		}
		return true
	})
	<-engine.Poison(sup).Done()
	testenv.Idle(t, kit.Calls) // the calls it started end too
}

// flush returns once the supervisor has handled everything sent to it
// before: hollywood handles an actor's messages in the order they were
// sent, and the supervisor answers ListJobs.
func flush(t *testing.T, engine *actor.Engine, sup *actor.PID) messages.JobList {
	t.Helper()
	v, err := engine.Request(sup, messages.ListJobs{}, testenv.Patience).Result()
	if err != nil {
		t.Fatalf("the supervisor did not answer: %v", err)
	}
	return v.(messages.JobList)
}

// settle returns once the supervisor has handled everything sent to it
// and every backend call it started (failing an orphan, releasing a job)
// has returned and had its answer handled: a terminal update it was going
// to send has been sent.
func settle(t *testing.T, engine *actor.Engine, sup *actor.PID) {
	t.Helper()
	testenv.Settle(t, kit.Calls, func() { flush(t, engine, sup) })
}

// An orphan check answered with rows read before a job finished must not
// end that job a second time, nor hand it back to the queue.
func TestStaleOrphanRowsOfFinishedJobsAreIgnored(t *testing.T) {
	b := newRecordingBackend()
	engine, sup := startSupervisor(t, b)
	j := backend.Job{ID: "job_1", Execution: backend.Execution{
		Script: &backend.Script{Type: "BASH", Content: "x"}, Environment: backend.FlexStringMap{"FAKE_LINES": "1"}}}
	kit.Send(engine, sup, messages.JobsClaimed{Jobs: []backend.Job{j}, ClaimedAt: time.Now()})
	testenv.Eventually(t, testenv.Patience, "the job's completion", func() bool { n, _ := b.counts("job_1"); return n == 1 })
	// Once the supervisor has handled JobFinished (the job is no longer
	// listed), deliver the stale rows.
	testenv.Eventually(t, testenv.Patience, "the supervisor to learn the job finished", func() bool {
		return len(flush(t, engine, sup).Jobs) == 0
	})
	kit.Send(engine, sup, messages.OrphansFound{Rows: []backend.JobRow{
		{ID: "job_1", Status: backend.StatusRunning}, {ID: "job_1", Status: backend.StatusClaimed}}})
	settle(t, engine, sup)
	if n, r := b.counts("job_1"); n != 1 || r != 0 {
		t.Fatalf("%d terminal updates and %d releases, want 1 and 0", n, r)
	}
	// A genuine orphan is still failed, once.
	kit.Send(engine, sup, messages.OrphansFound{Rows: []backend.JobRow{{ID: "job_old", Status: backend.StatusRunning}}})
	settle(t, engine, sup)
	if n, _ := b.counts("job_old"); n != 1 {
		t.Fatalf("the orphan had %d terminal updates, want 1", n)
	}
}

// Once an orphan is failed, a stale list that still shows it running
// (read before the failure landed) does not fail it again.
func TestFailedOrphanIsNotFailedTwice(t *testing.T) {
	b := newRecordingBackend()
	engine, sup := startSupervisor(t, b)
	stale := messages.OrphansFound{Rows: []backend.JobRow{{ID: "job_old", Status: backend.StatusRunning}}}
	kit.Send(engine, sup, stale)
	// Failed, and the supervisor has handled the failure's answer.
	settle(t, engine, sup)
	if n, _ := b.counts("job_old"); n != 1 {
		t.Fatalf("the orphan had %d terminal updates, want 1", n)
	}
	kit.Send(engine, sup, stale)
	settle(t, engine, sup)
	if n, _ := b.counts("job_old"); n != 1 {
		t.Fatalf("%d terminal updates, want 1", n)
	}
}

// cannotAbandon is an executor that cannot find what to stop (as SSH, when
// an orphan's servers are unknown).
type cannotAbandon struct{ fake.Executor }

func (*cannotAbandon) Abandon(context.Context, executors.Spec) error {
	return fmt.Errorf("its servers are not known to this process: %w", executors.ErrTargetUnknown)
}

// An orphan is failed saying whether what was left of it was stopped,
// asking only the executor its job type names; a job of no known type is
// not told in the words of an executor that could not know it.
func TestOrphanReasonSaysWhetherItWasStopped(t *testing.T) {
	b := newRecordingBackend()
	engine, sup := startSupervisor(t, b, map[jobspec.Kind]executors.Executor{
		jobspec.KindContainer: fake.New(), jobspec.KindSSH: &cannotAbandon{}})
	kit.Send(engine, sup, messages.OrphansFound{Rows: []backend.JobRow{
		{ID: "job_c", Type: "container", Status: backend.StatusRunning},
		{ID: "job_s", Type: "ssh", Status: backend.StatusRunning},
		{ID: "job_u", Status: backend.StatusRunning}}})
	testenv.Eventually(t, testenv.Patience, "all failed", func() bool {
		c, _ := b.counts("job_c")
		s, _ := b.counts("job_s")
		u, _ := b.counts("job_u")
		return c == 1 && s == 1 && u == 1
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range []string{"job_c", "job_u"} {
		if got := b.completed[id].Output.Stderr; !strings.Contains(got, "whatever was left of it was stopped") ||
			strings.Contains(got, "servers") || strings.Contains(got, "still running") {
			t.Errorf("%s: %q", id, got)
		}
	}
	if got := b.completed["job_s"].Output.Stderr; !strings.Contains(got, "may still be running") ||
		strings.Contains(got, "was stopped") {
		t.Errorf("ssh orphan: %q", got)
	}
}
