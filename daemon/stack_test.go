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

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/secret"
)

// stack is an embedded backend served over real HTTP and a daemon polling
// it through the same client the real backend gets.
type stack struct {
	t      *testing.T
	store  *embedded.Store
	url    string
	token  secret.Value
	daemon *Daemon
	cancel context.CancelFunc
	done   chan error
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
	d, err := New(cfg, Options{Logger: testLogger(t), Executors: execs})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.daemon, s.cancel, s.done = d, cancel, make(chan error, 1)
	go func() { <-ctx.Done(); s.done <- d.Shutdown() }()
	t.Cleanup(func() { s.stop() })
}

// stop shuts the daemon down (idempotent) and returns Run's error.
func (s *stack) stop() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		s.t.Fatal("daemon did not stop")
		return nil
	}
}

func (s *stack) submit(req embedded.SubmitRequest) string {
	s.t.Helper()
	id, err := s.store.Submit(context.Background(), req)
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
		v, err = s.store.Job(context.Background(), id)
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

// assertOneTerminalUpdate looks again after a while: a duplicate would
// follow the first update closely.
func (s *stack) assertOneTerminalUpdate(t *testing.T, v embedded.JobView) {
	t.Helper()
	s.assertEachOneTerminalUpdate(t, []string{v.ID})
}

func (s *stack) assertEachOneTerminalUpdate(t *testing.T, ids []string) {
	t.Helper()
	time.Sleep(150 * time.Millisecond)
	for _, id := range ids {
		again, err := s.store.Job(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if again.TerminalUpdates != 1 {
			t.Errorf("job %s had %d terminal updates, want exactly 1", id, again.TerminalUpdates)
		}
	}
}
