package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/messages"
	"github.com/cronium/orchestrator/secret"
)

// stack is an embedded backend served over real HTTP and a daemon polling
// it through the same client the real backend gets.
type stack struct {
	t      *testing.T
	store  *embedded.Store
	url    string
	token  secret.Value
	clock  kit.Clock // nil: the wall clock
	daemon *Daemon
	cancel context.CancelFunc
	done   chan error

	stopped bool
	err     error       // Shutdown's, once stopped
	once    []onceCheck // see assertEachOneTerminalUpdate
}

// onceCheck is jobs whose terminal updates are counted once the daemon
// has stopped, and the test that asked.
type onceCheck struct {
	test string
	ids  []string
}

// stackOption adjusts a stack's configuration (daemontest.Config's opts).
type stackOption = func(*config.Config)

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("TEST_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startStack(t *testing.T, execs map[jobspec.Kind]executors.Executor, opts ...stackOption) *stack {
	t.Helper()
	store, url, token := daemontest.Backend(t)
	s := &stack{t: t, store: store, url: url, token: token}
	s.start(execs, opts...)
	return s
}

// start runs a daemon against the stack's backend.
func (s *stack) start(execs map[jobspec.Kind]executors.Executor, opts ...stackOption) {
	t := s.t
	cfg := daemontest.Config(t, s.url, s.token, opts...)
	d, err := New(cfg, Options{Logger: testLogger(t), Executors: execs, Clock: s.clock,
		AdminTimeout: testenv.Patience})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Shutdown runs when cancel is called: by stop, or by a test that
	// watches the drain.
	ctx, cancel := context.WithCancel(context.Background())
	s.daemon, s.cancel, s.done = d, cancel, make(chan error, 1)
	go func() { <-ctx.Done(); s.done <- d.Shutdown() }()
	t.Cleanup(func() { s.stop() })
}

// stop shuts the daemon down (idempotent) and returns Shutdown's error,
// once every call its actors started has ended too: from then on nothing
// of the daemon runs. Then it checks the jobs assertEachOneTerminalUpdate
// noted.
func (s *stack) stop() error {
	if s.stopped {
		return s.err
	}
	s.stopped = true
	s.cancel()
	select {
	case s.err = <-s.done:
	case <-time.After(testenv.Patience):
		s.t.Fatalf("daemon did not stop within %s", testenv.Patience)
	}
	testenv.Idle(s.t, kit.Calls)
	for _, c := range s.once {
		s.checkOneTerminalUpdate(s.t, c.test+": ", c.ids)
	}
	s.once = nil
	return s.err
}

func (s *stack) submit(req embedded.SubmitRequest) string {
	s.t.Helper()
	id, err := s.store.Submit(s.t.Context(), req)
	if err != nil {
		s.t.Fatal(err)
	}
	return id
}

func bashJob(script string, env map[string]string) embedded.SubmitRequest {
	return embedded.SubmitRequest{Script: &backend.Script{Type: "BASH", Content: script}, Environment: env}
}

func terminal(status string) bool {
	return status == backend.StatusCompleted || status == backend.StatusFailed || status == backend.StatusCancelled
}

// wait returns the job once the orchestrator sent its terminal update (a
// cancel in the backend alone makes the status terminal too early).
func (s *stack) wait(id string, within time.Duration) embedded.JobView {
	s.t.Helper()
	var v embedded.JobView
	testenv.Eventually(s.t, within, "job "+id+" terminal", func() bool {
		var err error
		v, err = s.store.Job(s.t.Context(), id)
		return err == nil && terminal(v.Status) && v.TerminalUpdates > 0
	})
	return v
}

func (s *stack) jobPID(jobID string) *actor.PID {
	return actor.NewPID(s.daemon.Engine().Address(), s.daemon.Supervisor().ID+"/job/"+jobID)
}

func (s *stack) logPID(jobID string) *actor.PID {
	return actor.NewPID(s.daemon.Engine().Address(), s.daemon.Supervisor().ID+"/log/"+jobID)
}

// lines makes "line 1\n".."line n\n", the fake executor's output.
func lines(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString("line ")
		b.WriteString(itoa(i))
		b.WriteString("\n")
	}
	return b.String()
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var d []byte
	for ; i > 0; i /= 10 {
		d = append([]byte{byte('0' + i%10)}, d...)
	}
	return string(d)
}

// assertOneTerminalUpdate checks that the job had exactly one terminal
// update (see assertEachOneTerminalUpdate).
func (s *stack) assertOneTerminalUpdate(t *testing.T, v embedded.JobView) {
	t.Helper()
	s.assertEachOneTerminalUpdate(t, []string{v.ID})
}

// assertEachOneTerminalUpdate checks that each job had exactly one
// terminal update, counted once nothing can send another: when the daemon
// has stopped and every call its actors started has ended (the job's own
// actors, the supervisor's retries of a completion, its orphan checks).
// Until then it notes the jobs, and stop checks them; the test's cleanup
// stops the daemon, or the test does.
func (s *stack) assertEachOneTerminalUpdate(t *testing.T, ids []string) {
	t.Helper()
	if s.stopped {
		s.checkOneTerminalUpdate(t, "", ids)
		return
	}
	s.once = append(s.once, onceCheck{test: t.Name(), ids: ids})
}

func (s *stack) checkOneTerminalUpdate(t *testing.T, prefix string, ids []string) {
	t.Helper()
	for _, id := range ids {
		// Background: this may run in a cleanup, after t.Context ended.
		again, err := s.store.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if again.TerminalUpdates != 1 {
			t.Errorf("%sjob %s had %d terminal updates, want exactly 1", prefix, id, again.TerminalUpdates)
		}
	}
}

// ask sends msg to the supervisor and returns its answer.
func (s *stack) ask(t *testing.T, msg any) any {
	t.Helper()
	v, err := s.daemon.Engine().Request(s.daemon.Supervisor(), msg, testenv.Patience).Result()
	if err != nil {
		t.Fatalf("the supervisor did not answer %T: %v", msg, err)
	}
	return v
}

// tree is the supervisor's view of its actors.
func (s *stack) tree(t *testing.T) messages.ActorTree {
	t.Helper()
	return s.ask(t, messages.ListActors{}).(messages.ActorTree)
}

// jobsDone waits until the supervisor has handled the end of every job:
// none runs and no job or log actor is left, so that what it counts when
// a job ends (metrics, actors) is counted.
func (s *stack) jobsDone(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, testenv.Patience, "every job's end to be handled", func() bool {
		if jobs := s.ask(t, messages.ListJobs{}).(messages.JobList); len(jobs.Jobs) > 0 {
			return false
		}
		for _, a := range s.tree(t).Actors {
			if a.Kind == messages.KindJob || a.Kind == messages.KindLog {
				return false
			}
		}
		return true
	})
}

// restarted waits until the supervisor has recorded a restart of the
// actor pid: a crash it saw, or a kill it answered (by respawning the
// actor, while its job runs). The record stays after the actor is gone.
func (s *stack) restarted(t *testing.T, pid *actor.PID) {
	t.Helper()
	testenv.Eventually(t, testenv.Patience, pid.ID+" to be restarted", func() bool {
		for _, r := range s.tree(t).Restarts {
			if r.PID == pid.ID {
				return true
			}
		}
		return false
	})
}
