package daemon

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors/docker"
	"github.com/cronium/orchestrator/internal/testenv"
)

// benchLabel marks the containers the raw lifecycle creates, so that a
// failed benchmark's are removed.
const benchLabel = "cronium.bench"

// BenchmarkContainers measures container jobs end to end against the
// raw lifecycle of the same container, at 1, 4 and 8 at once.
//
// The orchestrator side is the real path: the embedded backend over
// HTTP, the daemon with its real Docker executor and the default
// configuration (bridge network, limits, tmpfs, init), jobs.max_concurrent
// = the concurrency, and b.N Bash jobs "echo hi" queued at once. A job's
// time runs from the answer that claimed it leaving the backend to its
// terminal update answered; jobs/s is b.N over the span from the first
// submission to the last terminal update.
//
// The raw side ("raw-" metrics) is the container the executor created for
// a job of the same plan (its configuration read back from the engine),
// running "bash -c 'echo hi'" instead of the bootstrap, through the SDK:
// create, attach, start, read the output, wait, remove, by as many
// workers as the concurrency; raw-jobs/s is containers per second.
//
// The two sides alternate in rounds (raw, daemon, daemon, raw, ...) so
// that a machine whose load drifts weighs on both alike.
//
//	go test -run '^$' -bench Containers -benchtime 40x ./daemon/
func BenchmarkContainers(b *testing.B) {
	for _, c := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) { benchContainers(b, c) })
	}
}

func benchContainers(b *testing.B, conc int) {
	cli := testenv.Docker(b)
	img := config.Default().Docker.ImageBash
	if _, err := cli.ImageInspect(b.Context(), img); err != nil {
		testenv.Unavailable(b, "image %s (make images): %v", img, err)
	}
	b.Cleanup(func() { removeBenchContainers(cli) })
	be := newTimedBackend(b)
	benchDaemon(b, be, nil, func(c *config.Config) { c.Jobs.MaxConcurrent = conc })
	raw := rawLifecycle{cli: cli, cfg: capturePlan(b, be, cli)}

	rounds := min(4, max(1, b.N/(2*conc)))
	var daemonLat, rawLat []time.Duration
	var daemonSpan, rawSpan time.Duration
	b.ResetTimer()
	for r := range rounds {
		n := b.N / rounds
		if r == rounds-1 {
			n = b.N - n*(rounds-1)
		}
		runDaemon := func() {
			lat, span := daemonRound(b, be, n)
			daemonLat, daemonSpan = append(daemonLat, lat...), daemonSpan+span
		}
		runRaw := func() {
			lat, span := raw.round(b, n, conc)
			rawLat, rawSpan = append(rawLat, lat...), rawSpan+span
		}
		if r%2 == 0 {
			runRaw()
			runDaemon()
		} else {
			runDaemon()
			runRaw()
		}
	}
	b.StopTimer()
	slices.Sort(daemonLat)
	slices.Sort(rawLat)
	b.ReportMetric(ms(percentile(daemonLat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(daemonLat, 95)), "p95-ms")
	b.ReportMetric(float64(b.N)/daemonSpan.Seconds(), "jobs/s")
	b.ReportMetric(ms(percentile(rawLat, 50)), "raw-p50-ms")
	b.ReportMetric(ms(percentile(rawLat, 95)), "raw-p95-ms")
	b.ReportMetric(float64(b.N)/rawSpan.Seconds(), "raw-jobs/s")
}

// daemonRound queues n jobs at once and waits for all of them to end.
func daemonRound(b *testing.B, be *timedBackend, n int) ([]time.Duration, time.Duration) {
	start := time.Now()
	ids := be.submitAll(script("BASH", "echo hi"), n)
	last := be.awaitEnded(ids, dockerPatience)
	for _, id := range ids {
		if v, err := be.store.Job(b.Context(), id); err != nil || v.Status != "completed" || v.Output.Stdout != "hi\n" {
			b.Fatalf("job %s: %+v %v", id, v, err)
		}
	}
	return be.spans(ids), last.Sub(start)
}

// capturePlan runs one job through the daemon that waits for a file, reads
// its container's configuration back from the engine while it waits, then
// lets it end: the plan the executor made, as the engine got it.
func capturePlan(b *testing.B, be *timedBackend, cli *client.Client) container.InspectResponse {
	b.Helper()
	ids := be.submitAll(script("BASH", "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo hi"), 1)
	var found []container.Summary
	testenv.Eventually(b, dockerPatience, "the job's container", func() bool {
		var err error
		found, err = cli.ContainerList(b.Context(), container.ListOptions{
			Filters: filters.NewArgs(filters.Arg("label", docker.LabelJob+"="+ids[0]), filters.Arg("status", "running"))})
		return err == nil && len(found) == 1
	})
	info, err := cli.ContainerInspect(b.Context(), found[0].ID)
	if err != nil {
		b.Fatal(err)
	}
	ex, err := cli.ContainerExecCreate(b.Context(), found[0].ID, container.ExecOptions{Cmd: []string{"touch", "/tmp/go"}})
	if err != nil {
		b.Fatal(err)
	}
	if err := cli.ContainerExecStart(b.Context(), ex.ID, container.ExecStartOptions{}); err != nil {
		b.Fatal(err)
	}
	be.awaitEnded(ids, dockerPatience)
	return info
}

// rawLifecycle runs the captured container configuration through the SDK.
type rawLifecycle struct {
	cli *client.Client
	cfg container.InspectResponse
	seq atomic.Int64
}

// round runs n lifecycles on conc workers.
func (r *rawLifecycle) round(b *testing.B, n, conc int) ([]time.Duration, time.Duration) {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		next atomic.Int64
		wg   sync.WaitGroup
		fail atomic.Value
	)
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				if err := r.once(b.Context()); err != nil {
					fail.CompareAndSwap(nil, err)
					return
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	span := time.Since(start)
	if err, _ := fail.Load().(error); err != nil {
		b.Fatal(err)
	}
	return lat, span
}

// once is one container: create, attach, start, read the output, wait,
// remove.
func (r *rawLifecycle) once(ctx context.Context) (err error) {
	cfg := *r.cfg.Config
	cfg.Hostname = ""
	cfg.Entrypoint, cfg.Cmd = nil, []string{"bash", "-c", "echo hi"}
	cfg.AttachStdin, cfg.OpenStdin, cfg.StdinOnce = false, false, false
	cfg.AttachStdout, cfg.AttachStderr = true, true
	cfg.Labels = map[string]string{benchLabel: "raw"}
	name := fmt.Sprintf("cronium-bench-raw-%d-%d", time.Now().UnixNano(), r.seq.Add(1))
	c, err := r.cli.ContainerCreate(ctx, &cfg, r.cfg.HostConfig, nil, nil, name)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = r.cli.ContainerRemove(context.WithoutCancel(ctx), c.ID, container.RemoveOptions{Force: true})
		}
	}()
	hj, err := r.cli.ContainerAttach(ctx, c.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return err
	}
	defer hj.Close()
	if err := r.cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return err
	}
	var out strings.Builder
	if _, err := stdcopy.StdCopy(&out, io.Discard, hj.Reader); err != nil {
		return err
	}
	waitC, errC := r.cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case w := <-waitC:
		if w.StatusCode != 0 || out.String() != "hi\n" {
			return fmt.Errorf("raw container: exit %d, output %q", w.StatusCode, out.String())
		}
	case err := <-errC:
		return err
	}
	return r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
}

func removeBenchContainers(cli *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", benchLabel))})
	for _, c := range list {
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
}
