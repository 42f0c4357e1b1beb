package daemon

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/executors/fake"
	"github.com/cronium/orchestrator/executors/httpreq"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/messages"
)

// These tests drive the whole actor system (poller, supervisor, job and
// log actors, backend client) against the embedded backend over real HTTP,
// with the scripted fake executor standing in for Docker so that crashes,
// restarts and budgets can be timed precisely. The same paths with real
// Docker are in e2e_docker_test.go.

// fakeStack runs the daemon on the scripted fake executor (with
// daemontest's TEST_HOLD_AFTER, to hold a job until the test has acted).
func fakeStack(t *testing.T, opts ...stackOption) (*stack, *daemontest.Fake) {
	f := daemontest.NewFake()
	return startStack(t, map[jobspec.Kind]executors.Executor{jobspec.KindContainer: f}, opts...), f
}

func TestJobLifecycle(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		script   string
		status   string
		exitCode int
		stdout   string
		stderr   string
	}{
		{name: "success", env: map[string]string{"FAKE_LINES": "3"}, status: "completed", stdout: lines(3)},
		{name: "exit code 3", env: map[string]string{"FAKE_EXIT": "3", "FAKE_STDERR": "boom\n"},
			status: "failed", exitCode: 3, stderr: "boom\n[cronium] exited with code 3\n"},
		{name: "could not run", env: map[string]string{"FAKE_ERROR": "image not found"},
			status: "failed", exitCode: 125, stderr: "[cronium] could not run the job: image not found\n"},
	}
	s, _ := fakeStack(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := s.submit(bashJob("echo", tt.env))
			v := s.wait(id, testenv.Patience)
			s.assertOneTerminalUpdate(t, v)
			if v.Status != tt.status || v.Result.ExitCode == nil || *v.Result.ExitCode != tt.exitCode {
				t.Fatalf("status %s exit %v, want %s %d (%+v)", v.Status, v.Result.ExitCode, tt.status, tt.exitCode, v.Result)
			}
			if v.Output.Stdout != tt.stdout || v.Output.Stderr != tt.stderr {
				t.Fatalf("output %q / %q", v.Output.Stdout, v.Output.Stderr)
			}
			if len(v.Executions) != 1 || v.Executions[0].Output != tt.stdout {
				t.Fatalf("executions %+v", v.Executions)
			}
		})
	}
}

func TestJobWithoutScriptFailsWithReason(t *testing.T) {
	s, f := fakeStack(t)
	id := s.submit(embedded.SubmitRequest{HTTP: &backend.HTTPRequest{Method: "GET", URL: "ftp://example.com/x"}})
	v := s.wait(id, testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "failed" || !strings.Contains(v.Output.Stderr, "is not an http(s) URL") {
		t.Fatalf("%s: %q", v.Status, v.Output.Stderr)
	}
	if f.Runs() != 0 {
		t.Fatal("an invalid job reached the executor")
	}
}

// A JobActor crashed on purpose mid-job is restarted by hollywood and the
// new instance re-attaches to the same execution: every line arrives once,
// the execution started once, one terminal update. The execution delivers
// 5 lines, then holds the rest until the crash or kill detaches it: the
// job cannot end first.
func TestCrashedJobActorResumesItsJob(t *testing.T) {
	for _, how := range []string{"crash", "kill"} {
		t.Run(how, func(t *testing.T) {
			s, f := fakeStack(t)
			id := s.submit(bashJob("x", map[string]string{"FAKE_LINES": "40", "FAKE_INTERVAL": "20ms",
				"FAKE_SLEEP": "500ms", "TEST_HOLD_AFTER": "5"}))
			testenv.Eventually(t, testenv.Patience, "output to flow", func() bool {
				o, _ := s.store.Output(t.Context(), id)
				return strings.Count(o.Stdout, "\n") >= 5
			})
			if how == "crash" {
				s.daemon.Engine().Send(s.jobPID(id), messages.Crash{Reason: "test"})
			} else {
				s.daemon.Engine().Stop(s.jobPID(id))
			}
			v := s.wait(id, testenv.Patience)
			s.assertOneTerminalUpdate(t, v)
			if v.Status != "completed" || v.Output.Stdout != lines(40) {
				t.Fatalf("status %s, stdout %q", v.Status, v.Output.Stdout)
			}
			if f.Starts() != 1 || f.Runs() < 2 {
				t.Fatalf("execution started %d times over %d runs; want 1 start, resumed", f.Starts(), f.Runs())
			}
		})
	}
}

// A retryable failure (a dropped connection) crashes the JobActor on
// purpose; the restart resumes the execution from the last byte kept.
func TestDroppedConnectionResumes(t *testing.T) {
	s, f := fakeStack(t)
	id := s.submit(bashJob("x", map[string]string{"FAKE_LINES": "30", "FAKE_INTERVAL": "5ms", "FAKE_DROP_AFTER": "10"}))
	v := s.wait(id, testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "completed" || v.Output.Stdout != lines(30) || f.Starts() != 1 {
		t.Fatalf("status %s starts %d stdout %q", v.Status, f.Starts(), v.Output.Stdout)
	}
}

// Past the restart budget the job ends failed, with the reason, once.
func TestRestartBudgetFailsTheJob(t *testing.T) {
	s, f := fakeStack(t, func(c *config.Config) { c.Supervisor.MaxRestarts = 2 })
	id := s.submit(bashJob("x", map[string]string{"FAKE_UNREACHABLE": "dial tcp 10.0.0.9:22: connection refused"}))
	v := s.wait(id, testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "failed" || !strings.Contains(v.Output.Stderr, "gave up after 3 restarts") ||
		!strings.Contains(v.Output.Stderr, "connection refused") {
		t.Fatalf("%s: %q", v.Status, v.Output.Stderr)
	}
	if f.Abandoned() != 1 {
		t.Fatalf("abandoned %d times, want 1", f.Abandoned())
	}
}

func TestCancelledInTheBackend(t *testing.T) {
	s, f := fakeStack(t)
	id := s.submit(bashJob("x", map[string]string{"FAKE_LINES": "1", "FAKE_SLEEP": "1h"}))
	testenv.Eventually(t, testenv.Patience, "job running", func() bool {
		v, _ := s.store.Job(t.Context(), id)
		return v.Status == "running" && f.Starts() == 1
	})
	if err := s.store.Cancel(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	v := s.wait(id, testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "cancelled" || !strings.Contains(v.Output.Stderr, "cancelled in Cronium") {
		t.Fatalf("%s %q", v.Status, v.Output.Stderr)
	}
}

// The first two jobs hold their executions until both run: the capacity
// is reached, however slow the machine.
func TestCapacityIsNeverExceeded(t *testing.T) {
	s, f := fakeStack(t, func(c *config.Config) { c.Jobs.MaxConcurrent = 2 })
	var ids []string
	for i := 0; i < 6; i++ {
		ids = append(ids, s.submit(bashJob("x", map[string]string{"FAKE_LINES": "1", "FAKE_SLEEP": "150ms",
			"TEST_HOLD_AFTER": "0"})))
	}
	testenv.Eventually(t, testenv.Patience, "two jobs running at once", func() bool { return f.Holding() == 2 })
	f.Release()
	for _, id := range ids {
		s.assertOneTerminalUpdate(t, s.wait(id, testenv.Patience))
	}
	if f.MaxActive() != 2 {
		t.Fatalf("at most %d jobs ran at once, want exactly the capacity 2", f.MaxActive())
	}
}

// A killed LogActor is respawned; the output it had not shipped is not
// lost because it never waited in its mailbox. The execution holds after
// 5 lines until the log actor was respawned: the job cannot end before.
func TestKilledLogActorLosesNoOutput(t *testing.T) {
	s, f := fakeStack(t)
	id := s.submit(bashJob("x", map[string]string{"FAKE_LINES": "50", "FAKE_INTERVAL": "10ms", "TEST_HOLD_AFTER": "5"}))
	testenv.Eventually(t, testenv.Patience, "output to flow", func() bool {
		o, _ := s.store.Output(t.Context(), id)
		return strings.Count(o.Stdout, "\n") >= 5
	})
	s.daemon.Engine().Stop(s.logPID(id))
	s.restarted(t, s.logPID(id))
	f.Release()
	v := s.wait(id, testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	if v.Output.Stdout != lines(50) || v.Executions[0].Output != lines(50) {
		t.Fatalf("stdout %q exec %q", v.Output.Stdout, v.Executions[0].Output)
	}
}

// graceClock is the wall clock, except that the timer of the shutdown
// grace period (recognised by its duration, which nothing else uses)
// fires when the test says so: expire is handed over on armed once the
// drain has begun.
type graceClock struct {
	kit.RealClock
	grace time.Duration
	armed chan func()
}

func (c *graceClock) AfterFunc(d time.Duration, f func()) kit.Timer {
	if d != c.grace {
		return c.RealClock.AfterFunc(d, f)
	}
	c.armed <- f
	return stoppedTimer{}
}

type stoppedTimer struct{}

func (stoppedTimer) Stop() bool { return true }

// SIGTERM with jobs.on_shutdown stop: no new jobs, running ones get the
// grace period, then are stopped and reported failed with the reason; Run
// returns nil. The short job finishes during the drain, and the grace
// period ends only after it did: when the test expires it.
func TestShutdownStopsAndReportsRunningJobs(t *testing.T) {
	const grace = 17*time.Minute + 3*time.Second
	clock := &graceClock{grace: grace, armed: make(chan func(), 1)}
	store, url, token := daemontest.Backend(t)
	s := &stack{t: t, store: store, url: url, token: token, clock: clock}
	f := daemontest.NewFake()
	s.start(map[jobspec.Kind]executors.Executor{jobspec.KindContainer: f},
		func(c *config.Config) { c.Jobs.ShutdownGrace, c.Jobs.OnShutdown = grace, config.ShutdownStop })
	long := s.submit(bashJob("x", map[string]string{"FAKE_SLEEP": "1h"}))
	short := s.submit(bashJob("x", map[string]string{"FAKE_LINES": "1", "TEST_HOLD_AFTER": "0"}))
	testenv.Eventually(t, testenv.Patience, "both running, the short one held", func() bool {
		return f.Starts() == 2 && f.Holding() == 1
	})
	s.cancel() // SIGTERM: Shutdown begins
	var expire func()
	select {
	case expire = <-clock.armed: // the drain has begun
	case <-time.After(testenv.Patience):
		t.Fatal("the drain did not start")
	}
	f.Release()
	vs := s.wait(short, testenv.Patience)
	expire()
	if err := s.stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	vl := s.wait(long, testenv.Patience)
	s.assertOneTerminalUpdate(t, vs)
	s.assertOneTerminalUpdate(t, vl)
	if vs.Status != "completed" {
		t.Fatalf("short job: %s", vs.Status)
	}
	if vl.Status != "failed" || !strings.Contains(vl.Output.Stderr, "shut down before the job finished") {
		t.Fatalf("long job: %s %q", vl.Status, vl.Output.Stderr)
	}
}

// Jobs left claimed or running under this orchestrator's id by an earlier
// process are reconciled at start-up: claimed ones are released, running
// ones end failed with the reason.
func TestOrphansAreReconciledAtStartup(t *testing.T) {
	store, url, token := daemontest.Backend(t)
	cfg := daemontest.Config(t, url, token)
	cfg.Orchestrator.ID = "orch-test"
	client, err := backend.New(backend.Options{BaseURL: url, Token: token, OrchestratorID: "orch-test",
		RequestTimeout: 5 * time.Second, RetryMaxElapsed: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	claimed, _ := store.Submit(ctx, bashJob("x", map[string]string{"FAKE_LINES": "1"}))
	running, _ := store.Submit(ctx, bashJob("x", nil))
	if jobs, err := client.PollJobs(ctx, 10); err != nil || len(jobs) != 2 {
		t.Fatalf("claim: %v %d", err, len(jobs))
	}
	if err := client.UpdateJobStatus(ctx, running, "running", backend.StatusDetails{}); err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, store: store, url: url, token: token}
	s.start(map[jobspec.Kind]executors.Executor{jobspec.KindContainer: fake.New()},
		func(c *config.Config) { c.Orchestrator.ID = "orch-test" })
	vr := s.wait(running, testenv.Patience)
	s.assertOneTerminalUpdate(t, vr)
	if vr.Status != "failed" || !strings.Contains(vr.Output.Stderr, "restarted while the job was running") {
		t.Fatalf("running orphan: %s %q", vr.Status, vr.Output.Stderr)
	}
	// The released job is claimed again and runs to completion.
	vc := s.wait(claimed, testenv.Patience)
	s.assertOneTerminalUpdate(t, vc)
	if vc.Status != "completed" {
		t.Fatalf("claimed orphan: %s", vc.Status)
	}
}

// Many jobs at once through the whole system: each ends once.
func TestManyJobsEachEndOnce(t *testing.T) {
	s, _ := fakeStack(t, func(c *config.Config) { c.Jobs.MaxConcurrent = 8 })
	ids := make([]string, 60)
	for i := range ids {
		ids[i] = s.submit(bashJob("x", map[string]string{"FAKE_LINES": "20"}))
	}
	for _, id := range ids { // they run meanwhile, 8 at a time
		v := s.wait(id, testenv.Patience)
		if v.Status != "completed" || v.Output.Stdout != lines(20) {
			t.Errorf("job %s: %s, %d terminal updates", id, v.Status, v.TerminalUpdates)
		}
	}
	s.assertEachOneTerminalUpdate(t, ids)
}

// A bug in an executor (a panic outside any actor) fails that job only.
func TestExecutorPanicFailsOnlyItsJob(t *testing.T) {
	s, _ := fakeStack(t)
	v := s.wait(s.submit(bashJob("x", map[string]string{"FAKE_PANIC": "assignment to entry in nil map"})), testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "failed" || !strings.Contains(v.Output.Stderr, "executor panicked: assignment to entry in nil map") {
		t.Fatalf("%s %q", v.Status, v.Output.Stderr)
	}
	next := s.wait(s.submit(bashJob("x", map[string]string{"FAKE_LINES": "1"})), testenv.Patience)
	if next.Status != "completed" {
		t.Fatalf("the daemon did not carry on: %s", next.Status)
	}
}

func TestHTTPRequestJobs(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.Error(w, "no such thing", http.StatusNotFound)
			return
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.Header.Get("X-Token"), body)
	}))
	defer target.Close()
	s := startStack(t, map[jobspec.Kind]executors.Executor{jobspec.KindHTTP: httpreq.New(nil)})
	ok := s.wait(s.submit(embedded.SubmitRequest{HTTP: &backend.HTTPRequest{Method: "POST", URL: target.URL + "/hook",
		Headers: backend.FlexStringMap{"X-Token": "t1"}, Body: "payload"}}), testenv.Patience)
	s.assertOneTerminalUpdate(t, ok)
	if ok.Status != "completed" || ok.Output.Stdout != "POST t1 payload" {
		t.Fatalf("%s %q", ok.Status, ok.Output.Stdout)
	}
	bad := s.wait(s.submit(embedded.SubmitRequest{HTTP: &backend.HTTPRequest{Method: "GET", URL: target.URL + "/missing"}}), testenv.Patience)
	s.assertOneTerminalUpdate(t, bad)
	if bad.Status != "failed" || !strings.Contains(bad.Output.Stderr, "HTTP 404 Not Found") {
		t.Fatalf("%s %q", bad.Status, bad.Output.Stderr)
	}
}
