package docker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
)

// dockerEnv is a real daemon with the runtime images.
type dockerEnv struct {
	t   testing.TB
	cli *client.Client
}

func newDockerEnv(t testing.TB) *dockerEnv {
	t.Helper()
	cli := testenv.Docker(t)
	for _, img := range []string{"cronium/runtime-bash:1", "cronium/runtime-python:1", "cronium/runtime-node:1"} {
		if _, err := cli.ImageInspect(context.Background(), img); err != nil {
			testenv.Unavailable(t, "image %s (run scripts/build-images.sh): %v", img, err)
		}
	}
	return &dockerEnv{t: t, cli: cli}
}

// executor returns an Executor with test settings, changed by mods.
func (d *dockerEnv) executor(mods ...func(*Options)) *Executor {
	d.t.Helper()
	e, err := New(d.options(mods...))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { _ = e.Close() })
	return e
}

// executorWrapping is executor with the Docker client wrapped, to inject
// faults; the observer sees the wrapped client's calls.
func (d *dockerEnv) executorWrapping(wrap func(apiClient) apiClient, mods ...func(*Options)) *Executor {
	d.t.Helper()
	opts, err := d.options(mods...).withDefaults()
	if err != nil {
		d.t.Fatal(err)
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		d.t.Fatal(err)
	}
	e := newExecutor(opts, wrap(cli))
	d.t.Cleanup(func() { _ = e.Close() })
	return e
}

// options are the test settings, changed by mods.
func (d *dockerEnv) options(mods ...func(*Options)) Options {
	opts := Options{
		OrchestratorID: "test",
		PullPolicy:     config.PullNever,
		ReadOnlyRoot:   true,
		DefaultMemory:  256 << 20,
		MaxMemory:      1 << 30,
		DefaultCPUs:    1,
		MaxCPUs:        2,
		StopGrace:      time.Second,
		APITimeout:     20 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(d.t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mods {
		m(&opts)
	}
	return opts
}

// spec is a job for lang with a unique execution id.
func (d *dockerEnv) spec(lang executors.Language, script string) executors.Spec {
	id := fmt.Sprintf("%s-%d", d.t.Name(), time.Now().UnixNano())
	return executors.Spec{
		JobID:       "job-" + d.t.Name(),
		ExecutionID: id,
		Script:      &executors.Script{Language: lang, Content: script},
		Timeout:     time.Minute,
	}
}

// containers lists the execution's containers, running or not.
func (d *dockerEnv) containers(executionID string) []container.Summary {
	d.t.Helper()
	list, err := d.cli.ContainerList(context.Background(), container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", LabelExecution+"="+executionID)),
	})
	if err != nil {
		d.t.Fatal(err)
	}
	return list
}

func (d *dockerEnv) requireNoContainer(executionID string) {
	d.t.Helper()
	if list := d.containers(executionID); len(list) != 0 {
		d.t.Errorf("container left behind: %s (%s)", list[0].ID[:12], list[0].State)
	}
}

// output collects what Run writes, like the job actor would, and lets
// tests wait on it.
type output struct {
	mu      sync.Mutex
	bufs    [2]bytes.Buffer
	changed chan struct{} // closed on the next write
	stdout  streamView
	stderr  streamView
}

func newOutput() *output {
	o := &output{}
	o.stdout, o.stderr = streamView{o, 0}, streamView{o, 1}
	return o
}

func (o *output) writers() executors.Output {
	return executors.Output{Stdout: outWriter{o, 0}, Stderr: outWriter{o, 1}}
}

type outWriter struct {
	o *output
	i int
}

func (w outWriter) Write(p []byte) (int, error) {
	w.o.mu.Lock()
	defer w.o.mu.Unlock()
	if w.o.changed != nil {
		close(w.o.changed)
		w.o.changed = nil
	}
	return w.o.bufs[w.i].Write(p)
}

// waitFor waits until cond holds for stdout and stderr.
func (o *output) waitFor(t *testing.T, what string, cond func(stdout, stderr []byte) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := o.await(ctx, cond); err != nil {
		t.Fatalf("timed out waiting for %s; have stdout %q", what, truncate(o.stdout.Bytes(), 200))
	}
}

// await waits until cond holds for stdout and stderr, or ctx ends.
func (o *output) await(ctx context.Context, cond func(stdout, stderr []byte) bool) error {
	for {
		o.mu.Lock()
		ok := cond(o.bufs[0].Bytes(), o.bufs[1].Bytes())
		if !ok && o.changed == nil {
			o.changed = make(chan struct{})
		}
		ch := o.changed
		o.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// streamView reads one of the streams.
type streamView struct {
	o *output
	i int
}

func (v streamView) Bytes() []byte {
	v.o.mu.Lock()
	defer v.o.mu.Unlock()
	return bytes.Clone(v.o.bufs[v.i].Bytes())
}

func (v streamView) String() string { return string(v.Bytes()) }
func (v streamView) Len() int64     { return int64(len(v.Bytes())) }

func (v streamView) waitContains(t *testing.T, s string) {
	t.Helper()
	v.o.waitFor(t, fmt.Sprintf("output %q", s), func(stdout, stderr []byte) bool {
		return bytes.Contains([][]byte{stdout, stderr}[v.i], []byte(s))
	})
}

func truncate(p []byte, n int) []byte {
	if len(p) > n {
		return p[len(p)-n:]
	}
	return p
}

// runAsync runs spec in a goroutine; the returned func waits for Run.
func runAsync(t *testing.T, ctx context.Context, e *Executor, spec executors.Spec, out executors.Output) func() (executors.Result, error) {
	type ret struct {
		res executors.Result
		err error
	}
	ch := make(chan ret, 1)
	go func() {
		res, err := e.Run(ctx, spec, out)
		ch <- ret{res, err}
	}()
	return func() (executors.Result, error) {
		t.Helper()
		select {
		case r := <-ch:
			return r.res, r.err
		case <-time.After(60 * time.Second):
			t.Fatal("Run did not return within 60s")
			return executors.Result{}, nil
		}
	}
}

// recorder is an Observer that counts.
type recorder struct {
	mu               sync.Mutex
	calls            map[string]int
	failed           map[string]int
	started, removed int
}

func (r *recorder) APICall(op string, _ time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls, r.failed = map[string]int{}, map[string]int{}
	}
	r.calls[op]++
	if err != nil {
		r.failed[op]++
	}
}

func (r *recorder) ContainerStarted() { r.mu.Lock(); r.started++; r.mu.Unlock() }
func (r *recorder) ContainerRemoved() { r.mu.Lock(); r.removed++; r.mu.Unlock() }

func (r *recorder) count(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[op]
}

// containers is how many containers were reported started and removed.
func (r *recorder) containers() (started, removed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started, r.removed
}

func mustSucceed(t *testing.T, res executors.Result, err error, o *output) {
	t.Helper()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !res.Succeeded() {
		t.Fatalf("result %s (%s); stderr: %s", res.Describe(), res.Reason, truncate(o.stderr.Bytes(), 500))
	}
}

func lines(n int, format string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, format, i)
	}
	return b.String()
}
