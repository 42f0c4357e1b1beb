package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/executors/fake"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/messages"
)

// These tests look at the orchestrator from outside, as an operator does:
// /metrics, /healthz, /readyz and the admin API over real HTTP.

func withListeners(c *config.Config) { c.HTTP.Listen, c.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0" }

func observedStack(t *testing.T, opts ...stackOption) (*stack, *fake.Executor) {
	return fakeStack(t, append([]stackOption{withListeners}, opts...)...)
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func adminPost(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, nil)
	req.Header.Set("X-Cronium-Admin", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *stack) scrape(t *testing.T) string {
	t.Helper()
	code, body := httpGet(t, "http://"+s.daemon.HTTPAddr()+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	return body
}

// value is the sample of one series in exposition text (labels exactly as
// printed, sorted by name), or -1 when absent.
func value(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// runSomeJobs covers every outcome the fake executor can produce, plus a
// crashed job actor, so that most series have samples.
func runSomeJobs(t *testing.T, s *stack) (ids []string) {
	t.Helper()
	envs := []map[string]string{
		{"FAKE_LINES": "5"},
		{"FAKE_EXIT": "3", "FAKE_STDERR": "boom\n"},
		{"FAKE_ERROR": "image not found"},
		{"FAKE_LINES": "20", "FAKE_INTERVAL": "10ms"},
	}
	for _, env := range envs {
		ids = append(ids, s.submit(bashJob("x", env)))
	}
	testenv.Eventually(t, 5*time.Second, "the slow job to run", func() bool {
		o, _ := s.store.Output(context.Background(), ids[3])
		return strings.Count(o.Stdout, "\n") >= 3
	})
	s.daemon.Engine().Send(s.jobPID(ids[3]), messages.Crash{Reason: "test"})
	for _, id := range ids {
		s.wait(id, 10*time.Second)
	}
	return ids
}

func TestMetricsAfterJobs(t *testing.T) {
	s, _ := observedStack(t)
	ids := runSomeJobs(t, s)
	text := s.scrape(t)
	p := "cronium_orchestrator_"
	tests := []struct {
		series string
		min    float64
	}{
		{p + "jobs_received_total", 4},
		{p + `jobs_finished_total{executor="container",outcome="success"}`, 2},
		{p + `jobs_finished_total{executor="container",outcome="failure"}`, 1},
		{p + `jobs_finished_total{executor="container",outcome="error"}`, 1},
		{p + `actor_restarts_total{kind="job"}`, 1},
		{p + `actors{kind="supervisor"}`, 1},
		{p + `actors{kind="poller"}`, 1},
		{p + "job_output_lines_total", 25},
		{p + `backend_requests_total{code="2xx",method="POST",route="/api/internal/jobs/{id}/complete"}`, 4},
		{p + `job_pickup_seconds_count{executor="container"}`, 3},
		{"go_goroutines", 1},
		{"process_resident_memory_bytes", 1},
	}
	for _, tt := range tests {
		if got := value(text, tt.series); got < tt.min {
			t.Errorf("%s = %v, want >= %v", tt.series, got, tt.min)
		}
	}
	// The jobs finished: none is active, and the job actors are gone.
	if got := value(text, p+"jobs_active"); got != 0 {
		t.Errorf("jobs_active %v", got)
	}
	if got := value(text, p+`actors{kind="job"}`); got != 0 {
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
		if code, body := httpGet(t, base+"/healthz"); code != 200 {
			t.Fatalf("healthz %d %s", code, body)
		}
		code, body := httpGet(t, base+"/readyz")
		if code != 200 || !strings.Contains(body, "backend: ok") || strings.Contains(body, "docker") {
			t.Fatalf("readyz %d %s (no docker check when Docker is not in use)", code, body)
		}
	})
	t.Run("backend down", func(t *testing.T) {
		cfg := testConfig(t, "http://"+deadAddr(t), "token", withListeners)
		d := startDaemon(t, cfg, map[jobspec.Kind]executors.Executor{jobspec.KindContainer: fake.New()})
		code, body := httpGet(t, "http://"+d.HTTPAddr()+"/readyz")
		if code != 503 || !strings.Contains(body, "backend: not ready") {
			t.Fatalf("readyz %d %s", code, body)
		}
		if code, _ := httpGet(t, "http://"+d.HTTPAddr()+"/healthz"); code != 200 {
			t.Fatalf("healthz %d: liveness must not depend on the backend", code)
		}
	})
	t.Run("docker unreachable", func(t *testing.T) {
		_, url, token := newBackend(t)
		cfg := testConfig(t, url, token, withListeners, func(c *config.Config) {
			c.Docker.Enabled = true
			c.Docker.Host = "unix:///nonexistent/docker.sock"
		})
		d := startDaemon(t, cfg, nil) // the real Docker executor, pointed at nothing
		code, body := httpGet(t, "http://"+d.HTTPAddr()+"/readyz")
		if code != 503 || !strings.Contains(body, "docker: not ready") || !strings.Contains(body, "backend: ok") {
			t.Fatalf("readyz %d %s", code, body)
		}
	})
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startDaemon runs a daemon on cfg until the test ends; execs nil builds
// the executors from cfg.
func startDaemon(t *testing.T, cfg config.Config, execs map[jobspec.Kind]executors.Executor) *Daemon {
	t.Helper()
	d, err := New(cfg, Options{Logger: testLogger(t), Executors: execs})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown() })
	return d
}

// The dashboard in dashboards/ must only query metrics the orchestrator
// exports.
func TestGrafanaDashboardQueriesExist(t *testing.T) {
	raw, err := os.ReadFile("../dashboards/cronium-orchestrator.json")
	if err != nil {
		t.Fatal(err)
	}
	exprs := dashboardExprs(t, raw)
	if len(exprs) < 20 {
		t.Fatalf("only %d queries found in the dashboard", len(exprs))
	}
	s, _ := observedStack(t)
	runSomeJobs(t, s)
	text := s.scrape(t)
	exported := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line != "" && line[0] != '#' {
			exported[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
		}
	}
	for _, expr := range exprs {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("no metric found in %q", expr)
		}
		for _, n := range names {
			if !exported[n] {
				t.Errorf("the dashboard queries %s (in %q), which /metrics does not export", n, expr)
			}
		}
	}
}

// dashboardExprs collects every PromQL expression: panel targets (rows
// may nest panels) and query variables.
func dashboardExprs(t *testing.T, raw []byte) []string {
	t.Helper()
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Type       string `json:"type"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	var walk func([]json.RawMessage)
	walk = func(panels []json.RawMessage) {
		for _, p := range panels {
			var panel struct {
				Panels  []json.RawMessage `json:"panels"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			}
			if err := json.Unmarshal(p, &panel); err != nil {
				t.Fatal(err)
			}
			for _, tg := range panel.Targets {
				exprs = append(exprs, tg.Expr)
			}
			walk(panel.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			// label_values(METRIC, LABEL): only the first argument is a metric.
			def, _ := strings.CutPrefix(v.Definition, "label_values(")
			exprs = append(exprs, strings.TrimSpace(strings.Split(def, ",")[0]))
		}
	}
	return exprs
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promVariables = regexp.MustCompile(`\$\{?\w+\}?`)
	promKeywords  = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "bool": true,
		"and": true, "or": true, "unless": true, "offset": true, "group_left": true, "group_right": true}
)

// metricNames extracts the metric names of a PromQL expression: what is
// left once strings, label matchers, ranges, groupings, variables and
// function calls are removed.
func metricNames(expr string) []string {
	e := promVariables.ReplaceAllString(expr, "")
	e = promStrings.ReplaceAllString(e, "")
	e = promMatchers.ReplaceAllString(e, "")
	e = promGrouping.ReplaceAllString(e, "")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		word := e[loc[0]:loc[1]]
		rest := strings.TrimLeft(e[loc[1]:], " ")
		if promKeywords[word] || strings.HasPrefix(rest, "(") {
			continue // a keyword or a function
		}
		names = append(names, word)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	tests := map[string]string{
		`sum by (outcome) (rate(cronium_orchestrator_jobs_finished_total{instance=~"$instance"}[$__rate_interval]))`: "cronium_orchestrator_jobs_finished_total",
		`histogram_quantile(0.95, sum by (le, route) (rate(x_bucket{a="b"}[5m])))`:                                   "x_bucket",
		`a / on (kind) b > 2`: "a,b",
	}
	for expr, want := range tests {
		if got := strings.Join(metricNames(expr), ","); got != want {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// The SSH executor reports to the same metrics: with a job running over
// a real sshd the connection and session gauges are up; a server that
// refuses connections counts as an unreachable connect failure.
func TestSSHMetrics(t *testing.T) {
	srv := testenv.StartSSHD(t, 0)
	s := sshStack(t, []*testenv.SSHD{srv}, withListeners, func(c *config.Config) { c.Supervisor.MaxRestarts = 0 })
	p := "cronium_orchestrator_"
	id := s.submit(sshJob("echo started; sleep 1", srv))
	testenv.Eventually(t, 15*time.Second, "the SSH job's output", func() bool {
		o, _ := s.store.Output(context.Background(), id)
		return strings.Contains(o.Stdout, "started")
	})
	text := s.scrape(t)
	if value(text, p+"ssh_connections") < 1 || value(text, p+"ssh_sessions") != 1 {
		t.Errorf("while running: connections %v sessions %v", value(text, p+"ssh_connections"),
			value(text, p+"ssh_sessions"))
	}
	s.wait(id, 20*time.Second)
	if got := value(s.scrape(t), p+"ssh_sessions"); got != 0 {
		t.Errorf("sessions %v after the job", got)
	}

	host, port, _ := net.SplitHostPort(deadAddr(t))
	n, _ := strconv.Atoi(port)
	down := *srv
	down.Host, down.Port = host, n
	s.wait(s.submit(sshJob("true", &down)), 20*time.Second)
	if got := value(s.scrape(t), p+`ssh_connect_failures_total{class="unreachable"}`); got < 1 {
		t.Errorf("connect failures (unreachable) %v", got)
	}
}
