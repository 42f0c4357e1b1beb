package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/admin"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/daemon"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/executors/fake"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/secret"
)

// The operator's commands (actors, cancel) against a daemon running in
// this process: embedded backend over HTTP, the scripted fake executor for
// container and SSH jobs, metrics and admin listeners on free loopback
// ports.

type opsDaemon struct {
	d     *daemon.Daemon
	store *embedded.Store
	fake  *fake.Executor
	admin string // admin API URL
}

func startOps(t *testing.T, logger *slog.Logger, opts ...func(*config.Config)) *opsDaemon {
	t.Helper()
	store, err := embedded.Open(filepath.Join(t.TempDir(), "cronium.db"))
	if err != nil {
		t.Fatal(err)
	}
	token := secret.Value("backend-token-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	srv := httptest.NewServer(embedded.NewServer(store, embedded.ServerOptions{Token: token}))
	cfg := config.Default()
	cfg.API.URL, cfg.API.Token = srv.URL, token
	cfg.Orchestrator.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Jobs.PollInterval, cfg.Jobs.CancelCheckInterval = 50*time.Millisecond, 100*time.Millisecond
	cfg.Jobs.ShutdownGrace, cfg.Jobs.StopGrace = 300*time.Millisecond, 200*time.Millisecond
	cfg.Logs.BatchInterval = 100 * time.Millisecond
	cfg.Supervisor.BackoffInitial, cfg.Supervisor.BackoffMax = 50*time.Millisecond, 200*time.Millisecond
	cfg.HTTP.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	for _, o := range opts {
		o(&cfg)
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f := fake.New()
	d, err := daemon.New(cfg, daemon.Options{Logger: logger,
		Executors: map[jobspec.Kind]executors.Executor{jobspec.KindContainer: f, jobspec.KindSSH: f}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.Shutdown()
		srv.Close()
		store.Close()
	})
	return &opsDaemon{d: d, store: store, fake: f, admin: "http://" + d.AdminAddr()}
}

func (o *opsDaemon) submit(t *testing.T, req embedded.SubmitRequest) string {
	t.Helper()
	id, err := o.store.Submit(context.Background(), req)
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
	testenv.Eventually(t, 10*time.Second, "job "+id+" to finish", func() bool {
		var err error
		v, err = o.store.Job(context.Background(), id)
		return err == nil && v.TerminalUpdates > 0
	})
	return v
}

func (o *opsDaemon) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + o.d.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// restarts is cronium_orchestrator_actor_restarts_total{kind=...}.
func restarts(text, kind string) float64 {
	prefix := `cronium_orchestrator_actor_restarts_total{kind="` + kind + `"} `
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
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
	id := o.submit(t, bash(map[string]string{"FAKE_LINES": "2", "FAKE_SLEEP": "1m"}))
	testenv.Eventually(t, 5*time.Second, "the job to run", func() bool { return o.fake.Starts() == 1 })
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
	id := o.submit(t, bash(map[string]string{"FAKE_LINES": "1", "FAKE_SLEEP": "1m"}))
	testenv.Eventually(t, 5*time.Second, "the job to run", func() bool { return o.fake.Starts() == 1 })
	out, err := runCmd(runCancel, "--admin", o.admin, id)
	if err != nil || !strings.Contains(out, "cancel requested") {
		t.Fatalf("cancel: %v %s", err, out)
	}
	v := o.finished(t, id)
	if v.Status != backend.StatusCancelled || !strings.Contains(v.Output.Stderr, "admin API") {
		t.Errorf("status %s, stderr %q", v.Status, v.Output.Stderr)
	}
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
	if _, err := runCmd(runActors, "--admin", "http://"+deadAddr(t)); err == nil ||
		!strings.Contains(err.Error(), "cannot reach the admin API") {
		t.Fatalf("no orchestrator: %v", err)
	}
}

func deadAddr(t *testing.T) string {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	return addr
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
