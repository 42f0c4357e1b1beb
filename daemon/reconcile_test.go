package daemon

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/executors/docker"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/journal"
	"github.com/cronium/orchestrator/metrics"
)

// armedClock is a fake clock that says each time a timer is set: the
// reconciler's loop is waiting then, and time can be moved.
type armedClock struct {
	*kit.FakeClock
	armed chan struct{}
}

func newArmedClock() *armedClock {
	return &armedClock{FakeClock: kit.NewFakeClock(time.Unix(1_700_000_000, 0)), armed: make(chan struct{}, 16)}
}

func (c *armedClock) AfterFunc(d time.Duration, f func()) kit.Timer {
	t := c.FakeClock.AfterFunc(d, f)
	c.armed <- struct{}{}
	return t
}

func (c *armedClock) awaitArmed(t *testing.T) {
	t.Helper()
	select {
	case <-c.armed:
	case <-time.After(testenv.Patience):
		t.Fatal("the reconciler never waited for its next pass")
	}
}

// removedCounts records DanglingRemoved.
type removedCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *removedCounts) DanglingRemoved(kind string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[kind] += n
}

func (r *removedCounts) get(kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[kind]
}

func testReconciler(clk kit.Clock, obs danglingObserver, sweeps ...sweep) *reconciler {
	owners := func() (func(string) bool, error) { return func(string) bool { return false }, nil }
	return &reconciler{interval: time.Minute, sweeps: sweeps, owners: owners, clock: clk, obs: obs,
		log: slog.New(slog.DiscardHandler)}
}

// TestReconcilerPassesEveryInterval: the first pass comes an interval
// after the start, every sweep runs, its count reaches the observer and a
// failing sweep does not stop the others; after stop nothing runs.
func TestReconcilerPassesEveryInterval(t *testing.T) {
	clk := newArmedClock()
	obs := &removedCounts{}
	var passes atomic.Int32
	r := testReconciler(clk, obs,
		sweep{kind: "spool", remove: func(context.Context, executors.Owners) (int, error) {
			return 1, errors.New("server gone")
		}},
		sweep{kind: "container", remove: func(_ context.Context, owners executors.Owners) (int, error) {
			if owners == nil {
				t.Error("the sweep got no owners")
			}
			passes.Add(1)
			return 2, nil
		}})
	stop := r.start(t.Context())
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})

	clk.awaitArmed(t)
	clk.Advance(time.Minute - time.Nanosecond)
	if passes.Load() != 0 {
		t.Fatal("a pass before the first interval was over")
	}
	for want, step := range []time.Duration{time.Nanosecond, time.Minute} {
		clk.Advance(step)
		clk.awaitArmed(t) // the pass is over
		if got := passes.Load(); got != int32(want+1) {
			t.Fatalf("%d passes, want %d", got, want+1)
		}
	}
	if c, s := obs.get("container"), obs.get("spool"); c != 4 || s != 2 {
		t.Errorf("observed %d containers and %d spools removed, want 4 and 2", c, s)
	}
	stop()
	stopped = true
	clk.Advance(time.Hour)
	if got := passes.Load(); got != 2 {
		t.Errorf("%d passes after stop, want none more", got-2)
	}
}

// TestReconcilerStopWaitsForThePass: stop cancels a pass under way and
// returns only once it has ended.
func TestReconcilerStopWaitsForThePass(t *testing.T) {
	clk := newArmedClock()
	entered := make(chan struct{})
	var ended atomic.Bool
	r := testReconciler(clk, &removedCounts{}, sweep{kind: "container",
		remove: func(ctx context.Context, _ executors.Owners) (int, error) {
			close(entered)
			<-ctx.Done()
			ended.Store(true)
			return 0, ctx.Err()
		}})
	stop := r.start(t.Context())
	clk.awaitArmed(t)
	clk.Advance(time.Minute)
	select {
	case <-entered:
	case <-time.After(testenv.Patience):
		t.Fatal("no pass started")
	}
	stop()
	if !ended.Load() {
		t.Fatal("stop returned while the pass was still running")
	}
}

func TestJournalOwners(t *testing.T) {
	dir := t.TempDir()
	j, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for job, stage := range map[string]journal.Stage{"a": journal.Running, "b": journal.Claimed} {
		e := journal.Entry{JobID: job, Stage: stage, Job: json.RawMessage(`{}`), ExecutionID: "exec-" + job}
		if err := j.Save(e); err != nil {
			t.Fatal(err)
		}
	}
	owned, err := journalOwners(j)()
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"exec-a": true, "exec-b": true, "exec-c": false, "": false} {
		if owned(id) != want {
			t.Errorf("owned(%q) = %v, want %v", id, !want, want)
		}
	}
	// An unreadable entry: a torn file of the journal's earlier layout,
	// moved into the log as it is when the journal opens.
	j.Close()
	bad := filepath.Join(dir, hex.EncodeToString([]byte("c"))+".json")
	if err := os.WriteFile(bad, []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if j, err = journal.Open(dir); err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := journalOwners(j)(); err == nil {
		t.Error("an unreadable entry did not stop the owners being read")
	}
}

// reconcileDaemon is a daemon built from the configuration, not started.
func reconcileDaemon(t *testing.T, opts Options, mods ...func(*config.Config)) *Daemon {
	t.Helper()
	cfg := daemontest.Config(t, "http://127.0.0.1:1", "token", mods...)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.executors.close)
	return d
}

// TestReconcilerWiring: a sweep per executor, under the metric's kinds;
// none when the interval is 0 or the executors are replaced. The loop
// lives until stop, not until the context Start was given ends.
func TestReconcilerWiring(t *testing.T) {
	if r := reconcileDaemon(t, Options{}, func(c *config.Config) { c.Docker.DanglingInterval = 0 }).reconciler(); r != nil {
		t.Error("a reconciler with docker.dangling_interval 0")
	}
	fakes := Options{Executors: map[jobspec.Kind]executors.Executor{}}
	if r := reconcileDaemon(t, fakes).reconciler(); r != nil {
		t.Error("a reconciler with the executors replaced")
	}
	clk := newArmedClock()
	d := reconcileDaemon(t, Options{Clock: clk})
	r := d.reconciler()
	var kinds []string
	for _, s := range r.sweeps {
		kinds = append(kinds, s.kind)
	}
	if !slices.Equal(kinds, metrics.DanglingKinds) {
		t.Errorf("sweeps %v, want the metric's kinds %v", kinds, metrics.DanglingKinds)
	}
	if r.interval != 5*time.Minute {
		t.Errorf("interval %s, want the default 5m", r.interval)
	}

	ctx, cancel := context.WithCancel(t.Context())
	stop := d.startReconciler(ctx)
	defer stop()
	clk.awaitArmed(t)
	cancel()
	clk.Advance(r.interval)
	clk.awaitArmed(t) // a pass ran and the loop waits for the next
}

// TestReconcilerRemovesDanglingContainers runs the daemon's reconciler
// against the real dockerd: a container of this orchestrator that the
// journal does not name is removed and counted; one it names stays.
func TestReconcilerRemovesDanglingContainers(t *testing.T) {
	t.Parallel()
	cli := testenv.Docker(t)
	const img = "cronium/runtime-bash:1"
	if _, err := cli.ImageInspect(t.Context(), img); err != nil {
		testenv.Unavailable(t, "image %s (run scripts/build-images.sh): %v", img, err)
	}
	d := reconcileDaemon(t, Options{}, func(c *config.Config) {
		c.Docker.DanglingInterval = 50 * time.Millisecond // a pass runs as soon as the container is old
		c.Docker.DanglingGrace = time.Millisecond
	})
	seq := time.Now().UnixNano()
	ownedExec, lostExec := fmt.Sprintf("exec-owned-%d", seq), fmt.Sprintf("exec-lost-%d", seq)
	entry := journal.Entry{JobID: "job-owned", Stage: journal.Running, Job: json.RawMessage(`{}`), ExecutionID: ownedExec}
	if err := d.journal.Save(entry); err != nil {
		t.Fatal(err)
	}
	owned, lost := labelledContainer(t, cli, img, d.id, ownedExec), labelledContainer(t, cli, img, d.id, lostExec)

	stop := d.startReconciler(t.Context())
	defer stop()
	testenv.Eventually(t, testenv.Patience, "the dangling container to be removed", func() bool {
		return !containerExists(t, cli, lost)
	})
	stop()
	if !containerExists(t, cli, owned) {
		t.Fatal("the container the journal names was removed")
	}
	if got := counterValue(t, d.registry, "cronium_orchestrator_dangling_removed_total", "container"); got != 1 {
		t.Errorf("dangling_removed_total{kind=container} = %v, want 1", got)
	}
}

// labelledContainer creates (does not start) a container labelled as a job
// container of orch; it is removed when the test ends.
func labelledContainer(t *testing.T, cli *client.Client, img, orch, executionID string) string {
	t.Helper()
	cfg := &container.Config{Image: img, Cmd: []string{"sleep", "600"}, Labels: map[string]string{
		docker.LabelManaged: "true", docker.LabelOrchestrator: orch, docker.LabelJob: "job-" + executionID,
		docker.LabelExecution: executionID}}
	resp, err := cli.ContainerCreate(context.Background(), cfg, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true})
	})
	return resp.ID
}

func containerExists(t *testing.T, cli *client.Client, id string) bool {
	t.Helper()
	list, err := cli.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("id", id))})
	if err != nil {
		t.Fatal(err)
	}
	return len(list) == 1
}

// counterValue reads the counter name{kind} from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, kind string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{kind=%q}", name, kind)
	return 0
}
