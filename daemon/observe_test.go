package daemon

import (
	"bytes"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/executors/fake"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/messages"
)

// These tests look at the orchestrator from outside, as an operator does:
// /metrics, /healthz, /readyz and the admin API over real HTTP.

func observedStack(t *testing.T, opts ...stackOption) (*stack, *daemontest.Fake) {
	return fakeStack(t, append([]stackOption{daemontest.Listeners}, opts...)...)
}

func (s *stack) scrape(t *testing.T) string {
	t.Helper()
	return testenv.Scrape(t, "http://"+s.daemon.HTTPAddr()+"/metrics")
}

// runSomeJobs covers every outcome the fake executor can produce, plus a
// crashed job actor, so that most series have samples. The slow job holds
// its output after 3 lines until the crash detaches it, so the crash lands
// while it runs. It returns once the supervisor has handled every job's
// end and the crash: what /metrics counts for them is counted.
func runSomeJobs(t *testing.T, s *stack) (ids []string) {
	t.Helper()
	envs := []map[string]string{
		{"FAKE_LINES": "5"},
		{"FAKE_EXIT": "3", "FAKE_STDERR": "boom\n"},
		{"FAKE_ERROR": "image not found"},
		{"FAKE_LINES": "20", "FAKE_INTERVAL": "10ms", "FAKE_SLEEP": "1s", "TEST_HOLD_AFTER": "3"},
	}
	for _, env := range envs {
		ids = append(ids, s.submit(bashJob("x", env)))
	}
	testenv.Eventually(t, testenv.Patience, "the slow job to run", func() bool {
		o, _ := s.store.Output(t.Context(), ids[3])
		return strings.Count(o.Stdout, "\n") >= 3
	})
	s.daemon.Engine().Send(s.jobPID(ids[3]), messages.Crash{Reason: "test"})
	s.restarted(t, s.jobPID(ids[3]))
	for _, id := range ids {
		s.wait(id, testenv.Patience)
	}
	s.jobsDone(t)
	return ids
}

func TestMetricsAfterJobs(t *testing.T) {
	s, _ := observedStack(t)
	ids := runSomeJobs(t, s)
	text := s.scrape(t)
	p := "cronium_orchestrator_"
	tests := []struct {
		name   string
		labels []string
		min    float64
	}{
		{p + "jobs_received_total", nil, 4},
		{p + "jobs_finished_total", []string{"executor", "container", "outcome", "success"}, 2},
		{p + "jobs_finished_total", []string{"executor", "container", "outcome", "failure"}, 1},
		{p + "jobs_finished_total", []string{"executor", "container", "outcome", "error"}, 1},
		{p + "actor_restarts_total", []string{"kind", "job"}, 1},
		{p + "actors", []string{"kind", "supervisor"}, 1},
		{p + "actors", []string{"kind", "poller"}, 1},
		{p + "job_output_lines_total", nil, 25},
		{p + "backend_requests_total", []string{"route", "/api/internal/jobs/{id}/complete", "method", "POST",
			"code", "2xx"}, 4},
		{p + "job_pickup_seconds_count", []string{"executor", "container"}, 3},
		{"go_goroutines", nil, 1},
		{"process_resident_memory_bytes", nil, 1},
	}
	for _, tt := range tests {
		if got := testenv.MetricValue(text, tt.name, tt.labels...); got < tt.min {
			t.Errorf("%s%v = %v, want >= %v", tt.name, tt.labels, got, tt.min)
		}
	}
	// The jobs finished: none is active, and the job actors are gone.
	if got := testenv.MetricValue(text, p+"jobs_active"); got != 0 {
		t.Errorf("jobs_active %v", got)
	}
	if got := testenv.MetricValue(text, p+"actors", "kind", "job"); got != 0 {
		t.Errorf("live job actors %v after every job finished", got)
	}
	for _, id := range ids {
		if strings.Contains(text, id) {
			t.Errorf("job id %s appears in /metrics", id)
		}
	}
}

// promtool (Debian's prometheus package) lints the live output; any
// finding fails the test.
func TestPromtoolChecksLiveMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testenv.Unavailable(t, "promtool (Debian package prometheus): %v", err)
		return
	}
	s, _ := observedStack(t)
	runSomeJobs(t, s)
	start := time.Now()
	text := s.scrape(t)
	t.Logf("scrape: %d bytes, %d lines in %s", len(text), strings.Count(text, "\n"), time.Since(start))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Run("ready", func(t *testing.T) {
		s, _ := observedStack(t)
		base := "http://" + s.daemon.HTTPAddr()
		if code, body := testenv.Get(t, base+"/healthz"); code != 200 {
			t.Fatalf("healthz %d %s", code, body)
		}
		code, body := testenv.Get(t, base+"/readyz")
		if code != 200 || !strings.Contains(body, "backend: ok") || strings.Contains(body, "docker") {
			t.Fatalf("readyz %d %s (no docker check when Docker is not in use)", code, body)
		}
	})
	// Draining: not ready, so that nothing sends it more work, while it
	// stays alive and keeps answering until its jobs are reported.
	t.Run("draining", func(t *testing.T) {
		s, f := observedStack(t)
		// The running job holds the drain open (for the grace period of
		// an hour) until the test cancels it.
		id := s.submit(bashJob("x", map[string]string{"FAKE_LINES": "1", "FAKE_SLEEP": "1h"}))
		testenv.Eventually(t, testenv.Patience, "the job to run", func() bool { return f.Starts() == 1 })
		base := "http://" + s.daemon.HTTPAddr()
		if code, body := testenv.Get(t, base+"/readyz"); code != 200 {
			t.Fatalf("readyz before the drain: %d %s", code, body)
		}
		s.cancel() // Shutdown
		var code int
		var body string
		testenv.Eventually(t, testenv.Patience, "readyz to report the drain", func() bool {
			code, body = testenv.Get(t, base+"/readyz")
			return code == 503
		})
		if !strings.Contains(body, "orchestrator: not ready: shutting down") || !strings.Contains(body, "backend: ok") {
			t.Errorf("readyz while draining: %d %s", code, body)
		}
		if code, _ := testenv.Get(t, base+"/healthz"); code != 200 {
			t.Errorf("healthz %d while draining", code)
		}
		if err := s.store.Cancel(t.Context(), id); err != nil { // the drain ends with it
			t.Fatal(err)
		}
	})
	t.Run("backend down", func(t *testing.T) {
		cfg := daemontest.Config(t, "http://"+testenv.FreeAddr(t), "token", daemontest.Listeners)
		d := startDaemon(t, cfg, map[jobspec.Kind]executors.Executor{jobspec.KindContainer: fake.New()})
		code, body := testenv.Get(t, "http://"+d.HTTPAddr()+"/readyz")
		if code != 503 || !strings.Contains(body, "backend: not ready") {
			t.Fatalf("readyz %d %s", code, body)
		}
		if code, _ := testenv.Get(t, "http://"+d.HTTPAddr()+"/healthz"); code != 200 {
			t.Fatalf("healthz %d: liveness must not depend on the backend", code)
		}
	})
	t.Run("docker unreachable", func(t *testing.T) {
		_, url, token := daemontest.Backend(t)
		cfg := daemontest.Config(t, url, token, daemontest.Listeners, func(c *config.Config) {
			c.Docker.Enabled = true
			c.Docker.Host = "unix:///nonexistent/docker.sock"
		})
		d := startDaemon(t, cfg, nil) // the real Docker executor, pointed at nothing
		code, body := testenv.Get(t, "http://"+d.HTTPAddr()+"/readyz")
		if code != 503 || !strings.Contains(body, "docker: not ready") || !strings.Contains(body, "backend: ok") {
			t.Fatalf("readyz %d %s", code, body)
		}
	})
}

// startDaemon runs a daemon on cfg until the test ends; execs nil builds
// the executors from cfg.
func startDaemon(t *testing.T, cfg config.Config, execs map[jobspec.Kind]executors.Executor) *Daemon {
	t.Helper()
	d, err := New(cfg, Options{Logger: testLogger(t), Executors: execs, AdminTimeout: testenv.Patience})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.Shutdown()
		testenv.Idle(t, kit.Calls) // nothing of the daemon runs on
	})
	return d
}

// The SSH executor reports to the same metrics: with a job running over
// a real sshd the connection and session gauges are up; a server that
// refuses connections counts as an unreachable connect failure. The job
// runs until the test, having looked, creates the file it waits for.
func TestSSHMetrics(t *testing.T) {
	srv := testenv.StartSSHD(t, 0)
	s := sshStack(t, []*testenv.SSHD{srv}, daemontest.Listeners, func(c *config.Config) { c.Supervisor.MaxRestarts = 0 })
	p := "cronium_orchestrator_"
	id := s.submit(sshJob("echo started; while [ ! -e /tmp/job-may-end ]; do sleep 0.05; done", srv))
	testenv.Eventually(t, testenv.Patience, "the SSH job's output", func() bool {
		o, _ := s.store.Output(t.Context(), id)
		return strings.Contains(o.Stdout, "started")
	})
	text := s.scrape(t)
	conns, sessions := testenv.MetricValue(text, p+"ssh_connections"), testenv.MetricValue(text, p+"ssh_sessions")
	// A script job has helpers: it takes a slot for its output's session
	// and one for its helpers' relay, for its whole run.
	if conns < 1 || sessions != 2 {
		t.Errorf("while running: connections %v sessions %v, want 2 session slots", conns, sessions)
	}
	if out, err := srv.Exec("touch /tmp/job-may-end"); err != nil {
		t.Fatalf("letting the job end: %v %s", err, out)
	}
	s.wait(id, testenv.Patience)
	// The finished spool is removed over one more session once the
	// backend has the completion (Spec.KeepFinished).
	testenv.Eventually(t, testenv.Patience, "no SSH session after the job", func() bool {
		return testenv.MetricValue(s.scrape(t), p+"ssh_sessions") == 0
	})

	host, port, _ := net.SplitHostPort(testenv.FreeAddr(t))
	n, _ := strconv.Atoi(port)
	down := *srv
	down.Host, down.Port = host, n
	s.wait(s.submit(sshJob("true", &down)), testenv.Patience)
	if got := testenv.MetricValue(s.scrape(t), p+"ssh_connect_failures_total", "class", "unreachable"); got < 1 {
		t.Errorf("connect failures (unreachable) %v", got)
	}
}
