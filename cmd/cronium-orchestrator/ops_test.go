package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/admin"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/daemon"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/messages"
)

// The operator's commands (actors, cancel) against a daemon running in
// this process: embedded backend over HTTP, the scripted fake executor for
// container and SSH jobs (with daemontest's TEST_HOLD_AFTER), metrics and
// admin listeners on free loopback ports.

type opsDaemon struct {
	d     *daemon.Daemon
	store *embedded.Store
	fake  *daemontest.Fake // nil when the daemon built its own executors
	admin string           // admin API URL
}

func startOps(t *testing.T, logger *slog.Logger, opts ...func(*config.Config)) *opsDaemon {
	t.Helper()
	f := daemontest.NewFake()
	o := startDaemon(t, logger, map[jobspec.Kind]executors.Executor{jobspec.KindContainer: f, jobspec.KindSSH: f},
		opts...)
	o.fake = f
	return o
}

// startDaemon runs a daemon on execs (nil: the executors the
// configuration asks for) with its logger made slog's default, as run and
// standalone do, until the test ends.
func startDaemon(t *testing.T, logger *slog.Logger, execs map[jobspec.Kind]executors.Executor,
	opts ...func(*config.Config)) *opsDaemon {
	t.Helper()
	store, url, token := daemontest.Backend(t)
	shortGrace := func(c *config.Config) {
		c.Jobs.ShutdownGrace, c.Jobs.StopGrace = 300*time.Millisecond, 200*time.Millisecond
	}
	cfg := daemontest.Config(t, url, token, append([]func(*config.Config){daemontest.Listeners, shortGrace}, opts...)...)
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	prev := slog.Default()
	// The admin API awaits a crash's restart within AdminTimeout.
	d, err := newDaemon(cfg, daemon.Options{Logger: logger, Executors: execs, AdminTimeout: testenv.Patience})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slog.SetDefault(prev) })
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, registered := idleChecks.LoadOrStore(t, true); !registered {
		// Registered before the first daemon's shutdown, so it runs after
		// every daemon of the test stopped: the calls it counts are the
		// process's, and a daemon still running holds its long poll.
		t.Cleanup(func() {
			idleChecks.Delete(t)
			testenv.Idle(t, kit.Calls) // nothing of the daemons runs on
		})
	}
	t.Cleanup(func() { _ = d.Shutdown() })
	return &opsDaemon{d: d, store: store, admin: "http://" + d.AdminAddr()}
}

// idleChecks: the tests that registered their check that no call of their
// daemons runs on.
var idleChecks sync.Map

func (o *opsDaemon) submit(t *testing.T, req embedded.SubmitRequest) string {
	t.Helper()
	id, err := o.store.Submit(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func bash(env map[string]string) embedded.SubmitRequest {
	return embedded.SubmitRequest{Script: &backend.Script{Type: "BASH", Content: "x"}, Environment: env}
}

// finished waits for the job's terminal update.
func (o *opsDaemon) finished(t *testing.T, id string) embedded.JobView {
	t.Helper()
	var v embedded.JobView
	testenv.Eventually(t, testenv.Patience, "job "+id+" to finish", func() bool {
		var err error
		v, err = o.store.Job(t.Context(), id)
		return err == nil && v.TerminalUpdates > 0
	})
	return v
}

// forgotten waits until the supervisor has handled the job's end (it no
// longer lists the job): the backend learns of the end first.
func (o *opsDaemon) forgotten(t *testing.T, id string) {
	t.Helper()
	testenv.Eventually(t, testenv.Patience, "the supervisor to handle the end of job "+id, func() bool {
		v, err := o.d.Engine().Request(o.d.Supervisor(), messages.ListJobs{}, testenv.Patience).Result()
		if err != nil {
			t.Fatalf("the supervisor did not answer: %v", err)
		}
		for _, j := range v.(messages.JobList).Jobs {
			if j.JobID == id {
				return false
			}
		}
		return true
	})
}

func (o *opsDaemon) scrape(t *testing.T) string {
	t.Helper()
	return testenv.Scrape(t, "http://"+o.d.HTTPAddr()+"/metrics")
}

// restarts is cronium_orchestrator_actor_restarts_total{kind=...}.
func restarts(text, kind string) float64 {
	return testenv.MetricValue(text, "cronium_orchestrator_actor_restarts_total", "kind", kind)
}

func runCmd(run func([]string, io.Writer) error, args ...string) (string, error) {
	var out bytes.Buffer
	err := run(args, &out)
	return out.String(), err
}

// Killing or crashing any actor from the CLI shows in
// actor_restarts_total at the very next scrape: the admin API answers
// once the supervisor has counted the restart.
func TestActorsCommandKillAndCrash(t *testing.T) {
	o := startOps(t, nil)
	id := o.submit(t, bash(map[string]string{"FAKE_LINES": "2", "FAKE_SLEEP": "1h"}))
	testenv.Eventually(t, testenv.Patience, "the job to run", func() bool { return o.fake.Starts() == 1 })
	jobPID, logPID := "supervisor/root/job/"+id, "supervisor/root/log/"+id

	out, err := runCmd(runActors, "--admin", o.admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"supervisor/root ", "├─ supervisor/root/poller/main", "├─ " + jobPID,
		"└─ " + logPID, "RESTARTS"} {
		if !strings.Contains(out, want) {
			t.Errorf("tree lacks %q:\n%s", want, out)
		}
	}
	out, err = runCmd(runActors, "--json", "--admin", o.admin)
	var tree admin.Tree
	if err != nil || json.Unmarshal([]byte(out), &tree) != nil || len(tree.Actors) != 4 {
		t.Fatalf("--json: %v %d actors\n%s", err, len(tree.Actors), out)
	}

	tests := []struct{ action, pid, kind string }{
		{"crash", jobPID, "job"},
		{"kill", jobPID, "job"},
		{"crash", logPID, "log"},
		{"kill", logPID, "log"},
		{"crash", "supervisor/root/poller/main", "poller"},
		{"kill", "supervisor/root/poller/main", "poller"},
		{"crash", "supervisor/root", "supervisor"},
	}
	for _, tt := range tests {
		before := restarts(o.scrape(t), tt.kind)
		out, err := runCmd(runActors, tt.action, tt.pid, "--admin", o.admin)
		if err != nil || !strings.Contains(out, "restarted by the supervisor") {
			t.Fatalf("actors %s %s: %v %s", tt.action, tt.pid, err, out)
		}
		if after := restarts(o.scrape(t), tt.kind); after != before+1 {
			t.Errorf("after %s %s: restarts_total{kind=%q} %v → %v, want +1 at the next scrape",
				tt.action, tt.pid, tt.kind, before, after)
		}
	}
	out, err = runCmd(runActors, "--admin", o.admin)
	if err != nil || !strings.Contains(out, "Recent restarts") || !strings.Contains(out, "crashed on purpose") {
		t.Errorf("tree after restarts: %v\n%s", err, out)
	}

	errorCases := []struct {
		args []string
		want string
	}{
		{[]string{"kill", "supervisor/root"}, "HTTP 409"},
		{[]string{"crash", "supervisor/root/job/job_nope"}, "HTTP 404"},
		{[]string{"explode", "x"}, "unexpected arguments"},
	}
	for _, tt := range errorCases {
		if _, err := runCmd(runActors, append(tt.args, "--admin", o.admin)...); err == nil ||
			!strings.Contains(err.Error(), tt.want) {
			t.Errorf("actors %v: %v, want an error with %q", tt.args, err, tt.want)
		}
	}
	// The job survived all of it and still runs its one execution.
	if o.fake.Starts() != 1 {
		t.Errorf("the execution started %d times", o.fake.Starts())
	}
}

func TestCancelCommand(t *testing.T) {
	o := startOps(t, nil)
	id := o.submit(t, bash(map[string]string{"FAKE_LINES": "1", "FAKE_SLEEP": "1h"}))
	testenv.Eventually(t, testenv.Patience, "the job to run", func() bool { return o.fake.Starts() == 1 })
	out, err := runCmd(runCancel, "--admin", o.admin, id)
	if err != nil || !strings.Contains(out, "cancel requested") {
		t.Fatalf("cancel: %v %s", err, out)
	}
	v := o.finished(t, id)
	if v.Status != backend.StatusCancelled || !strings.Contains(v.Output.Stderr, "admin API") {
		t.Errorf("status %s, stderr %q", v.Status, v.Output.Stderr)
	}
	o.forgotten(t, id)
	if _, err := runCmd(runCancel, id, "--admin", o.admin); err == nil || !strings.Contains(err.Error(), "no such job") {
		t.Errorf("cancelling a finished job: %v", err)
	}
}

func TestAdminCommandsNeedTheToken(t *testing.T) {
	const token = "admin-token-for-the-cli-test"
	o := startOps(t, nil, func(c *config.Config) { c.Admin.Token = token })
	if _, err := runCmd(runActors, "--admin", o.admin); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("without a token: %v", err)
	}
	if _, err := runCmd(runActors, "--admin", o.admin, "--token", token); err != nil {
		t.Fatalf("with --token: %v", err)
	}
	t.Setenv("CRONIUM_ADMIN_TOKEN", token)
	if _, err := runCmd(runActors, "--admin", o.admin); err != nil {
		t.Fatalf("with CRONIUM_ADMIN_TOKEN: %v", err)
	}
	if _, err := runCmd(runActors, "--admin", "http://"+testenv.FreeAddr(t)); err == nil ||
		!strings.Contains(err.Error(), "cannot reach the admin API") {
		t.Fatalf("no orchestrator: %v", err)
	}
}

// captureLogs points the process logger (newLogger, as run and
// standalone build it) at a file, and restores the defaults afterwards.
func captureLogs(t *testing.T, format string) (*slog.Logger, func() string) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "logs")
	if err != nil {
		t.Fatal(err)
	}
	prev, prevStderr := slog.Default(), os.Stderr
	os.Stderr = f
	logger := newLogger(config.Log{Format: format, Level: "info"})
	os.Stderr = prevStderr
	t.Cleanup(func() {
		slog.SetDefault(prev)
		log.SetOutput(os.Stderr) // slog.SetDefault redirected the log package
		f.Close()
	})
	return logger, func() string {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}
