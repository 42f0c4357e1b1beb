package metrics

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// exercise calls every observer method once or twice.
func exercise(m *Metrics) {
	m.MessageHandled("job", "StartJob", time.Millisecond, 2*time.Millisecond)
	m.MessageHandled("job", "actor.Started", time.Millisecond, 0)
	m.ActorSpawned("job")
	m.ActorRestarted("job")
	m.ActorStopped("job")
	m.RestartBudgetExhausted("log")
	m.DeadLetter()
	m.JobReceived()
	m.JobRunning("container", 300*time.Millisecond)
	m.JobFinished("container", "success", 2*time.Second)
	m.JobsActive(3)
	m.OutputShipped(10, 100, 5)
	m.OutputMasked(2)
	m.ObserveRequest("/api/internal/jobs/{id}/complete", "POST", 200, 20*time.Millisecond)
	m.ObserveRetry("/api/internal/jobs/queue")
	m.APICall("create", 10*time.Millisecond, nil)
	m.ContainerStarted()
	m.Connections("10.0.0.1:22", 1)
	m.Sessions("10.0.0.1:22", 1)
	m.ConnectFailed("10.0.0.2:22", "unreachable")
	m.BreakerChanged("10.0.0.2:22", "closed", "open")
	m.DanglingRemoved("container", 1)
}

func TestLint(t *testing.T) {
	reg := NewRegistry()
	m := New(reg)
	m.WatchMailboxes(func() map[string]int64 { return map[string]int64{"job": 2} })
	exercise(m)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestEveryMetricHasTheNamespace(t *testing.T) {
	reg := prometheus.NewRegistry()
	exercise(New(reg))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) < 25 {
		t.Fatalf("only %d metric families", len(families))
	}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), Namespace+"_") {
			t.Errorf("%s lacks the %s_ prefix", f.GetName(), Namespace)
		}
	}
}

func TestActors(t *testing.T) {
	m := New(prometheus.NewRegistry())
	for range 3 {
		m.ActorSpawned("job")
	}
	m.ActorStopped("job")
	m.ActorRestarted("job")
	m.ActorRestarted("supervisor")
	tests := []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"live jobs", m.actors.live.WithLabelValues("job"), 2},
		{"live logs untouched", m.actors.live.WithLabelValues("log"), 0},
		{"job spawns", m.actors.spawns.WithLabelValues("job"), 3},
		{"job stops", m.actors.stops.WithLabelValues("job"), 1},
		{"job restarts", m.actors.restarts.WithLabelValues("job"), 1},
		{"supervisor restarts", m.actors.restarts.WithLabelValues("supervisor"), 1},
	}
	for _, tt := range tests {
		if got := testutil.ToFloat64(tt.c); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestMessageWaitOnlyForStampedMessages(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.MessageHandled("job", "actor.Started", time.Microsecond, 0)
	m.MessageHandled("job", "advance", time.Microsecond, time.Millisecond)
	if n := testutil.CollectAndCount(m.actors.handling); n != 2 {
		t.Errorf("handling series %d, want 2", n)
	}
	if n := testutil.CollectAndCount(m.actors.wait); n != 1 {
		t.Errorf("wait series %d, want 1 (unstamped messages have no wait)", n)
	}
}

func TestMailboxes(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.WatchMailboxes(func() map[string]int64 { return map[string]int64{"job": 4, "log": -1, "depthtest": 9} })
	want := `
# HELP cronium_orchestrator_actor_mailbox_messages Messages waiting in actors' mailboxes, by actor kind (messages sent with kit.Send; hollywood exposes no inbox length).
# TYPE cronium_orchestrator_actor_mailbox_messages gauge
cronium_orchestrator_actor_mailbox_messages{kind="job"} 4
cronium_orchestrator_actor_mailbox_messages{kind="log"} 0
cronium_orchestrator_actor_mailbox_messages{kind="poller"} 0
cronium_orchestrator_actor_mailbox_messages{kind="supervisor"} 0
`
	if err := testutil.CollectAndCompare(m.actors.mailboxes, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestJobs(t *testing.T) {
	tests := []struct {
		executor, outcome string
		wantE, wantO      string
	}{
		{"container", "success", "container", "success"},
		{"ssh", "timeout", "ssh", "timeout"},
		{"unknown", "error", "unknown", "error"},
		{"", "weird", "unknown", "error"},
		{"k8s", "cancelled", "unknown", "cancelled"},
	}
	for _, tt := range tests {
		m := New(prometheus.NewRegistry())
		m.JobFinished(tt.executor, tt.outcome, 90*time.Minute)
		if got := testutil.ToFloat64(m.jobs.finished.WithLabelValues(tt.wantE, tt.wantO)); got != 1 {
			t.Errorf("%s/%s: finished{%s,%s} = %v", tt.executor, tt.outcome, tt.wantE, tt.wantO, got)
		}
	}
	m := New(prometheus.NewRegistry())
	m.OutputShipped(3, 30, 0)
	m.OutputShipped(2, 20, 7)
	m.OutputMasked(2)
	m.OutputMasked(1)
	for name, tt := range map[string]struct {
		c    prometheus.Collector
		want float64
	}{
		"batches": {m.jobs.batches, 2}, "lines": {m.jobs.lines, 5}, "bytes": {m.jobs.bytes, 50},
		"dropped": {m.jobs.dropped, 7}, "masked": {m.jobs.masked, 3},
	} {
		if got := testutil.ToFloat64(tt.c); got != tt.want {
			t.Errorf("%s: %v, want %v", name, got, tt.want)
		}
	}
}

func TestJobDurationBucketsSpanSecondsToHours(t *testing.T) {
	b := jobDurationBuckets
	if b[0] > 0.1 || b[len(b)-1] < 6*3600 {
		t.Fatalf("buckets %v do not span 0.1 s to 6 h", b)
	}
}

func TestBackendLabels(t *testing.T) {
	classes := map[int]string{0: "error", 200: "2xx", 204: "2xx", 404: "4xx", 429: "4xx", 503: "5xx", 999: "error"}
	for status, want := range classes {
		if got := statusClass(status); got != want {
			t.Errorf("statusClass(%d) = %q, want %q", status, got, want)
		}
	}
	routes := map[string]string{
		"/api/internal/jobs/{id}/complete": "/api/internal/jobs/{id}/complete",
		"/api/internal/jobs/queue":         "/api/internal/jobs/queue",
		"/api/internal/jobs/job_123/done":  "other",
		"/api/internal/jobs/abcdef/fail":   "other", // an id without digits is still an id
		"/api/internal/jobs/{id}/unknown":  "other",
		"jobs":                             "other",
	}
	for route, want := range routes {
		m := New(prometheus.NewRegistry())
		m.ObserveRequest(route, "POST", 200, time.Millisecond)
		m.ObserveRetry(route)
		if n := testutil.CollectAndCount(m.backend.requests); n != 1 {
			t.Errorf("request to %q: %d route series, want 1", route, n)
		}
		if got := testutil.ToFloat64(m.backend.requests.WithLabelValues(want, "POST", "2xx")); got != 1 {
			t.Errorf("request to %q: requests{route=%q} = %v, want 1", route, want, got)
		}
		if got := testutil.ToFloat64(m.backend.retries.WithLabelValues(want)); got != 1 {
			t.Errorf("retry of %q: retries{route=%q} = %v, want 1", route, want, got)
		}
	}
}

// backendRoutes is the route label's whole set of values: it must list
// every Route constant of the backend client.
func TestBackendRoutesAreEveryRoute(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, "../backend", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			ast.Inspect(f, func(n ast.Node) bool {
				vs, ok := n.(*ast.ValueSpec)
				if !ok {
					return true
				}
				for i, name := range vs.Names {
					if strings.HasPrefix(name.Name, "Route") && i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							v, _ := strconv.Unquote(lit.Value)
							routes = append(routes, v)
						}
					}
				}
				return true
			})
		}
	}
	if len(routes) < 10 {
		t.Fatalf("found only %d Route constants in ../backend", len(routes))
	}
	slices.Sort(routes)
	known := slices.Sorted(slices.Values(backendRoutes))
	if !slices.Equal(routes, known) {
		t.Errorf("backend routes %v\nbackendRoutes  %v", routes, known)
	}
}

func TestDocker(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.ContainerStarted()
	m.ContainerStarted()
	m.ContainerRemoved()
	if got := testutil.ToFloat64(m.docker.running); got != 1 {
		t.Errorf("running %v, want 1", got)
	}
	m.APICall("wait", time.Hour, context.Canceled)
	m.APICall("start", time.Millisecond, errors.New("boom"))
	if n := testutil.CollectAndCount(m.docker.calls); n != len(DockerOps)-1 {
		t.Errorf("latency series %d, want %d (wait is left out)", n, len(DockerOps)-1)
	}
	if got := testutil.ToFloat64(m.docker.errors.WithLabelValues("start")); got != 1 {
		t.Errorf("start errors %v", got)
	}
	if got := testutil.ToFloat64(m.docker.errors.WithLabelValues("wait")); got != 0 {
		t.Errorf("wait errors %v: a cancelled wait is no Docker error", got)
	}
}

func TestSSHBreakers(t *testing.T) {
	m := New(prometheus.NewRegistry())
	// Transitions as gobreaker reports them, one server at a time.
	steps := []struct {
		server, from, to   string
		wantOpen, wantHalf float64
	}{
		{"a:22", "closed", "open", 1, 0},
		{"b:22", "closed", "open", 2, 0},
		{"a:22", "open", "half-open", 1, 1},
		{"a:22", "half-open", "open", 2, 0},
		{"a:22", "open", "half-open", 1, 1},
		{"a:22", "half-open", "closed", 1, 0},
		{"b:22", "open", "half-open", 0, 1},
		{"b:22", "half-open", "closed", 0, 0},
	}
	for i, s := range steps {
		m.BreakerChanged(s.server, s.from, s.to)
		open := testutil.ToFloat64(m.ssh.breakers.WithLabelValues("open"))
		half := testutil.ToFloat64(m.ssh.breakers.WithLabelValues("half-open"))
		if open != s.wantOpen || half != s.wantHalf {
			t.Fatalf("step %d: open %v half-open %v, want %v %v", i, open, half, s.wantOpen, s.wantHalf)
		}
	}
	m.Connections("a:22", 1)
	m.Connections("b:22", 1)
	m.Connections("a:22", -1)
	m.ConnectFailed("a:22", "auth")
	m.ConnectFailed("a:22", "something new")
	if got := testutil.ToFloat64(m.ssh.conns); got != 1 {
		t.Errorf("connections %v", got)
	}
	if got := testutil.ToFloat64(m.ssh.failures.WithLabelValues("other")); got != 1 {
		t.Errorf("unknown failure class not folded into other: %v", got)
	}
}

// No label may carry an id: every label value is from a fixed set.
func TestNoIDsInLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	exercise(m)
	m.ObserveRequest("/api/internal/jobs/job_9f8e/complete", "POST", 200, time.Millisecond)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, "job_") || strings.Contains(v, "10.0.0.") {
					t.Errorf("%s{%s=%q} carries an id", f.GetName(), l.GetName(), v)
				}
			}
		}
	}
}
