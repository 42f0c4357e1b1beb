package docker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/cronium/orchestrator/executors"
)

func TestMeterRecord(t *testing.T) {
	t.Parallel()
	frames := []string{
		`{"read":"2026-01-02T03:04:05Z","memory_stats":{"usage":1000,"max_usage":5000},"cpu_stats":{"cpu_usage":{"total_usage":2000000000}}}`,
		// cgroup v2: no max_usage; the usage sampled is the peak seen.
		`{"read":"2026-01-02T03:04:06Z","memory_stats":{"usage":7000},"cpu_stats":{"cpu_usage":{"total_usage":2500000000}}}`,
		// After the exit: an empty sample, which says nothing.
		`{"read":"0001-01-01T00:00:00Z","memory_stats":{},"cpu_stats":{"cpu_usage":{"total_usage":0}}}`,
	}
	m := &meter{}
	m.read(strings.NewReader(strings.Join(frames, "\n")))
	m.cancel, m.done = func() {}, make(chan struct{})
	close(m.done)
	got := m.stop()
	want := executors.Cost{PeakMemoryBytes: 7000, CPUSeconds: 2.5, CPUMeasured: true, Source: executors.CostCgroupSampled}
	if got != want {
		t.Errorf("cost %+v, want %+v", got, want)
	}

	empty := &meter{cancel: func() {}, done: make(chan struct{})}
	empty.read(strings.NewReader(frames[2]))
	close(empty.done)
	if c := empty.stop(); c.Measured() {
		t.Errorf("no sample but cost %+v", c)
	}
}

// statsTap passes the stats stream through and hands the test every
// sample the executor's meter has read in full.
type statsTap struct {
	apiClient
	samples chan tapped
}

type tapped struct {
	containerID string
	stats       container.StatsResponse
}

func (c statsTap) ContainerStats(ctx context.Context, id string, stream bool) (container.StatsResponseReader, error) {
	r, err := c.apiClient.ContainerStats(ctx, id, stream)
	if err != nil {
		return r, err
	}
	pr, pw := io.Pipe()
	go func() {
		dec := json.NewDecoder(pr)
		for {
			var s container.StatsResponse
			if err := dec.Decode(&s); err != nil {
				_, _ = io.Copy(io.Discard, pr)
				return
			}
			select {
			case c.samples <- tapped{id, s}:
			default: // the test looks at the latest only
			}
		}
	}()
	body := r.Body
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(body, pw), closerFunc(func() error { pw.Close(); return body.Close() })}
	return r, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// A job that holds 50 MB and burns a second of CPU reports both. The
// script waits, after burning, until the meter has read a sample that
// shows the burn (the daemon samples about once a second), and the test
// then lets it end by creating a file in its /tmp.
func TestCostOfAContainerJob(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	tap := statsTap{samples: make(chan tapped, 64)}
	e := d.executorWrapping(func(api apiClient) apiClient { tap.apiClient = api; return tap })
	script := `import os, sys, time
held = bytearray(50 << 20)
for i in range(0, len(held), 4096):
    held[i] = 1
start = time.process_time()
while time.process_time() - start < 1.0:
    pass
print("burnt", flush=True)
while not os.path.exists("/tmp/go"):
    time.sleep(0.02)
`
	spec := d.spec(executors.Python, script)
	o := newOutput()
	type run struct {
		res executors.Result
		err error
	}
	done := make(chan run, 1)
	go func() {
		res, err := e.Run(t.Context(), spec, o.writers())
		done <- run{res, err}
	}()
	o.stdout.waitContains(t, "burnt\n")
	var id string
	for id == "" {
		select {
		case s := <-tap.samples:
			if s.stats.CPUStats.CPUUsage.TotalUsage >= 1e9 && max(s.stats.MemoryStats.MaxUsage, s.stats.MemoryStats.Usage) >= 50<<20 {
				id = s.containerID
			}
		case r := <-done:
			t.Fatalf("the job ended before it was let go: %+v, %v", r.res, r.err)
		}
	}
	d.exec(id, "touch", "/tmp/go")
	r := <-done
	mustSucceed(t, r.res, r.err, o)
	c := r.res.Cost
	t.Logf("cost %+v", c)
	if c.PeakMemoryBytes < 50<<20 || !c.CPUMeasured || c.CPUSeconds < 0.5 || c.Source != executors.CostCgroupSampled {
		t.Errorf("cost %+v, want a peak of 50 MB or more and 0.5 s of CPU or more", c)
	}
}

// Without stats (an engine that refuses them) the job runs the same and
// reports no cost rather than a zero one.
func TestCostWithoutStats(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	e := d.executorWrapping(func(api apiClient) apiClient { return noStats{api} })
	o := newOutput()
	res, err := e.Run(t.Context(), d.spec(executors.Bash, "echo hi"), o.writers())
	mustSucceed(t, res, err, o)
	if res.Cost.Measured() || res.Cost != (executors.Cost{}) {
		t.Errorf("cost %+v without stats", res.Cost)
	}
}

type noStats struct{ apiClient }

func (noStats) ContainerStats(context.Context, string, bool) (container.StatsResponseReader, error) {
	return container.StatsResponseReader{}, errors.New("no stats here")
}

// exec runs cmd in a running container and waits for it.
func (d *dockerEnv) exec(id string, cmd ...string) {
	d.t.Helper()
	ctx := context.Background()
	created, err := d.cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd})
	if err != nil {
		d.t.Fatalf("exec %v: %v", cmd, err)
	}
	hj, err := d.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		d.t.Fatalf("exec %v: %v", cmd, err)
	}
	defer hj.Close()
	_, _ = io.Copy(io.Discard, hj.Reader)
	info, err := d.cli.ContainerExecInspect(ctx, created.ID)
	if err != nil || info.ExitCode != 0 {
		d.t.Fatalf("exec %v: exit code %d, %v", cmd, info.ExitCode, err)
	}
}

// BenchmarkCostMeter compares a short job's round trip with the stats
// stream and without it, interleaved so that both see the same load:
// go test -run '^$' -bench CostMeter -benchtime 40x ./executors/docker
func BenchmarkCostMeter(b *testing.B) {
	d := newDockerEnv(b)
	with := d.executor(benchOptions)
	without := d.executorWrapping(func(api apiClient) apiClient { return noStats{api} }, benchOptions)
	var took [2]time.Duration
	measured := 0
	i := 0
	for b.Loop() {
		for k := range 2 {
			j := (i + k) % 2 // alternate which goes first
			e := []*Executor{with, without}[j]
			start := time.Now()
			res, err := e.Run(context.Background(), d.spec(executors.Bash, "echo hi"), executors.Output{})
			took[j] += time.Since(start)
			if err != nil || !res.Succeeded() {
				b.Fatalf("%+v, %v", res, err)
			}
			if j == 0 && res.Cost.Measured() {
				measured++
			}
		}
		i++
	}
	n := float64(b.N) * float64(time.Millisecond)
	b.ReportMetric(float64(took[0])/n, "with-ms/op")
	b.ReportMetric(float64(took[1])/n, "without-ms/op")
	b.ReportMetric(float64(measured)/float64(b.N), "measured/op")
}
