package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors/docker"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
)

// The job of BenchmarkOutput1MLines: 1,000,000 lines of 50 bytes, exactly
// 50,000,000 bytes. awk, because the image's seq (BusyBox) has no -f.
const (
	outputLineCount = 1_000_000
	outputLineFmt   = "line %07d 012345678901234567890123456789012345\n"
	outputScript    = `awk 'BEGIN { for (i = 1; i <= 1000000; i++) printf "line %07d 012345678901234567890123456789012345\n", i }'`
	// outputMaxBytes is jobs.output_max_bytes in the benchmark: the
	// default (1 MiB per stream) keeps the head and tail only, and the
	// target is every line at the backend.
	outputMaxBytes = "64MiB"
	outputLabel    = "cronium.bench-output"
)

// BenchmarkOutput1MLines measures a container job printing 1,000,000 lines
// (50 MB) against reading the same container's output raw.
//
// The orchestrator is the real binary (`run`, a process of its own, so
// that its peak RSS is its own), default configuration but
// jobs.output_max_bytes = 64MiB, so that the backend receives all of the
// output instead of its first and last 512 KiB, and pull policy never (no
// registry). The backend is the embedded one, in this process, over HTTP.
// A job's time runs from its container started (executionStartedAt, as
// the orchestrator reported it: when the engine's start call returned) to
// its /complete answered; its stdout at the backend must then be the 50 MB
// byte for byte. MB/s is 50 MB over that time.
//
// The floor (raw-MB/s) is the container the executor created for a job,
// its configuration read back from the engine, running the same script
// through the SDK: attach, start, and from the start call's return to the
// end of the attached stream, the output copied out with stdcopy (and
// checked). Attach is how the executor reads a running container's
// output. The logs endpoint is no floor: it reads the log driver's files
// back, slower, and with the plan's local driver (64m a file) a follow of
// this job on Docker 20.10 crossed a rotation and returned 41.6 or
// 58.4 MB instead of 50.
//
// run-MB/s is MB over the job's running time alone, executionStartedAt to
// executionCompletedAt (the container's exit, seen once its output was
// read): the orchestrator reading it while it runs. after-exit-ours-s is
// the rest of a job's time that is not the backend's (backend-final-s):
// the orchestrator's own, from the exit to /complete.
//
// peak-rss-MB is the orchestrator process's VmHWM at the end; idle-rss-MB
// its VmRSS before the first job. MB are 10^6 bytes.
//
// backend-final-s is the backend's own share of a job's time: from the
// arrival of its last execution update to its answer, plus the same for
// its /complete. The API needs the whole output in both, once it has
// ended (see the API page), so this much follows the container's exit
// whatever the orchestrator does; it is the embedded backend decoding and
// storing two 50 MB JSON bodies in SQLite (the real backend: PostgreSQL).
//
//	go test -run '^$' -bench Output1MLines -benchtime 1x ./cmd/cronium-orchestrator/
func BenchmarkOutput1MLines(b *testing.B) {
	cli := testenv.Docker(b)
	img := config.Default().Docker.ImageBash
	if _, err := cli.ImageInspect(b.Context(), img); err != nil {
		testenv.Unavailable(b, "image %s (make images): %v", img, err)
	}
	run := strconv.Itoa(os.Getpid()) // this run's leftovers, not another's
	b.Cleanup(func() { removeLabelled(cli, outputLabel+"="+run) })
	want := expectedOutput()
	be := newCompletedBackend(b, cli)
	orch := startRun(b, be, "--jobs-output-max-bytes", outputMaxBytes, "--docker-pull-policy", "never")
	plan := capturePlan(b, be, cli)
	plan.Config.Labels = map[string]string{outputLabel: run}
	idle := procStatusMB(b, orch.Process.Pid, "VmRSS")

	var ours outputTimes
	var raw time.Duration
	b.ResetTimer()
	for i := range b.N {
		// Alternated, so that a drifting load weighs on both alike.
		if i%2 == 0 {
			raw += rawOutput(b, cli, plan, want)
			ours = ours.add(orchestratorOutput(b, be, want))
		} else {
			ours = ours.add(orchestratorOutput(b, be, want))
			raw += rawOutput(b, cli, plan, want)
		}
	}
	b.StopTimer()
	mb := float64(want.n) * float64(b.N) / 1e6
	n := float64(b.N)
	b.ReportMetric(mb/ours.took.Seconds(), "MB/s")
	b.ReportMetric(mb/raw.Seconds(), "raw-MB/s")
	b.ReportMetric(mb/ours.running.Seconds(), "run-MB/s")
	b.ReportMetric(ours.backendFinal.Seconds()/n, "backend-final-s")
	b.ReportMetric((ours.took-ours.running-ours.backendFinal).Seconds()/n, "after-exit-ours-s")
	b.ReportMetric(procStatusMB(b, orch.Process.Pid, "VmHWM"), "peak-rss-MB")
	b.ReportMetric(idle, "idle-rss-MB")
}

// digest is a length and a sha256: the output a job must deliver.
type digest struct {
	n   int64
	sum [sha256.Size]byte
}

func expectedOutput() digest {
	h := newDigester()
	var buf []byte
	for i := 1; i <= outputLineCount; i++ {
		buf = fmt.Appendf(buf[:0], outputLineFmt, i)
		h.Write(buf)
	}
	return h.digest()
}

type digester struct {
	h hash.Hash
	n int64
}

func newDigester() *digester { return &digester{h: sha256.New()} }

func (d *digester) Write(p []byte) (int, error) {
	d.n += int64(len(p))
	return d.h.Write(p)
}

func (d *digester) digest() digest {
	out := digest{n: d.n}
	d.h.Sum(out.sum[:0])
	return out
}

func digestOf(s string) digest {
	d := newDigester()
	io.WriteString(d, s)
	return d.digest()
}

// completedBackend is the embedded backend over HTTP, noting when each
// job's /complete was answered.
type completedBackend struct {
	store  *embedded.Store
	api    http.Handler
	docker *client.Client // removes a job's container left by a failed run
	url    string
	token  string

	mu   sync.Mutex
	done map[string]time.Time
	// The backend's own time taking a job's last execution update and
	// its /complete, from the request's arrival to its answer: the two
	// whole-output bodies the API needs once the output has ended.
	lastUpdate, final map[string]time.Duration
}

func newCompletedBackend(b *testing.B, cli *client.Client) *completedBackend {
	store, _, _ := daemontest.Backend(b)
	be := &completedBackend{store: store, docker: cli, token: "test-token-output", done: map[string]time.Time{},
		lastUpdate: map[string]time.Duration{}, final: map[string]time.Duration{}}
	be.api = embedded.NewServer(store, embedded.ServerOptions{Token: secretOf(be.token)})
	srv := httptest.NewServer(be)
	b.Cleanup(srv.Close)
	be.url = srv.URL
	return be
}

func (be *completedBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/update") {
		be.api.ServeHTTP(w, r)
		exec := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/internal/executions/exec_"), "/update")
		if i := strings.LastIndexByte(exec, '_'); i > 0 {
			be.mu.Lock()
			be.lastUpdate[exec[:i]] = time.Since(arrived)
			be.mu.Unlock()
		}
		return
	}
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/complete") {
		be.api.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	be.api.ServeHTTP(rec, r)
	at := time.Now() // the answer is written below: it is on its way
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
	if rec.Code/100 == 2 {
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/internal/jobs/"), "/complete")
		be.mu.Lock()
		if _, ok := be.done[id]; !ok {
			be.done[id] = at
			be.final[id] = at.Sub(arrived) + be.lastUpdate[id]
		}
		be.mu.Unlock()
	}
}

func (be *completedBackend) submit(b *testing.B, script string) string {
	b.Helper()
	id, err := be.store.Submit(b.Context(), embedded.SubmitRequest{Script: &backend.Script{Type: "BASH", Content: script}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { removeLabelled(be.docker, docker.LabelJob+"="+id) })
	return id
}

// completed waits for the job's /complete and returns when it was answered.
func (be *completedBackend) completed(b *testing.B, id string, within time.Duration) time.Time {
	b.Helper()
	var at time.Time
	testenv.Eventually(b, within, "job "+id+" completed", func() bool {
		be.mu.Lock()
		defer be.mu.Unlock()
		var ok bool
		at, ok = be.done[id]
		return ok
	})
	return at
}

// startRun runs the binary's `run` against be until the benchmark ends.
func startRun(b *testing.B, be *completedBackend, extra ...string) *exec.Cmd {
	b.Helper()
	cmd := exec.Command(binary, append([]string{"run", "--api-url", be.url, "--orchestrator-state-dir", b.TempDir(),
		"--http-listen", "", "--admin-listen", ""}, extra...)...)
	cmd.Env = append(os.Environ(), "CRONIUM_API_TOKEN="+be.token)
	logs := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testenv.Eventually(b, time.Minute, "the orchestrator to start", func() bool {
		return strings.Contains(logs.String(), "orchestrator started")
	})
	return cmd
}

// outputTimes are one job's (or a sum of jobs') times.
type outputTimes struct {
	took         time.Duration // container start to /complete answered
	running      time.Duration // container start to its exit
	backendFinal time.Duration // the backend's own share (see backend-final-s)
}

func (t outputTimes) add(u outputTimes) outputTimes {
	return outputTimes{took: t.took + u.took, running: t.running + u.running, backendFinal: t.backendFinal + u.backendFinal}
}

// orchestratorOutput runs one job and returns its times, once its output
// at the backend is checked.
func orchestratorOutput(b *testing.B, be *completedBackend, want digest) outputTimes {
	b.Helper()
	id := be.submit(b, outputScript)
	end := be.completed(b, id, 2*time.Minute)
	b.StopTimer()
	defer b.StartTimer()
	v, err := be.store.Job(b.Context(), id)
	if err != nil {
		b.Fatal(err)
	}
	if got := digestOf(v.Output.Stdout); v.Status != backend.StatusCompleted || got != want {
		b.Fatalf("job %s: status %s, stdout %d bytes (sha256 %x), want %d bytes (sha256 %x); stderr %.300q",
			id, v.Status, got.n, got.sum, want.n, want.sum, v.Output.Stderr)
	}
	if len(v.Executions) != 1 {
		b.Fatalf("job %s: %d executions", id, len(v.Executions))
	}
	var timings struct {
		ExecutionStartedAt   time.Time `json:"executionStartedAt"`
		ExecutionCompletedAt time.Time `json:"executionCompletedAt"`
	}
	if err := json.Unmarshal(v.Executions[0].Timings, &timings); err != nil || timings.ExecutionStartedAt.IsZero() ||
		timings.ExecutionCompletedAt.Before(timings.ExecutionStartedAt) {
		b.Fatalf("job %s: no executionStartedAt in %s (%v)", id, v.Executions[0].Timings, err)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	return outputTimes{took: end.Sub(timings.ExecutionStartedAt),
		running: timings.ExecutionCompletedAt.Sub(timings.ExecutionStartedAt), backendFinal: be.final[id]}
}

// capturePlan runs one job that waits for a file, reads its container's
// configuration back from the engine while it waits, then lets it end:
// the plan the executor made, as the engine got it.
func capturePlan(b *testing.B, be *completedBackend, cli *client.Client) container.InspectResponse {
	b.Helper()
	id := be.submit(b, "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo hi")
	var found []container.Summary
	testenv.Eventually(b, time.Minute, "the job's container", func() bool {
		var err error
		found, err = cli.ContainerList(b.Context(), container.ListOptions{
			Filters: filters.NewArgs(filters.Arg("label", docker.LabelJob+"="+id), filters.Arg("status", "running"))})
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
	be.completed(b, id, time.Minute)
	return info
}

// rawOutput runs the script in a container of the captured plan and
// returns its time from start to the end of its attached output. Creating,
// attaching, waiting for the exit and removing are outside the time.
func rawOutput(b *testing.B, cli *client.Client, plan container.InspectResponse, want digest) time.Duration {
	b.Helper()
	b.StopTimer()
	ctx := b.Context()
	cfg := *plan.Config
	cfg.Hostname = ""
	cfg.Entrypoint, cfg.Cmd = nil, []string{"bash", "-c", outputScript}
	cfg.AttachStdin, cfg.OpenStdin, cfg.StdinOnce = false, false, false
	cfg.AttachStdout, cfg.AttachStderr = true, true
	c, err := cli.ContainerCreate(ctx, &cfg, plan.HostConfig, nil, nil, "")
	if err != nil {
		b.Fatal(err)
	}
	defer cli.ContainerRemove(context.WithoutCancel(ctx), c.ID, container.RemoveOptions{Force: true})
	hj, err := cli.ContainerAttach(ctx, c.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		b.Fatal(err)
	}
	defer hj.Close()
	b.StartTimer()
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	out, errOut := newDigester(), &bytes.Buffer{}
	if _, err := stdcopy.StdCopy(out, errOut, bufio.NewReaderSize(hj.Reader, 32<<10)); err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	b.StopTimer()
	defer b.StartTimer()
	if got := out.digest(); got != want {
		b.Fatalf("raw container: stdout %d bytes (sha256 %x), want %d bytes; stderr %q", got.n, got.sum, want.n, errOut)
	}
	return d
}

// procStatusMB is a field of /proc/PID/status given in kB, in MB.
func procStatusMB(b *testing.B, pid int, field string) float64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024 / 1e6
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

func removeLabelled(cli *client.Client, label string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", label))})
	for _, c := range list {
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
}
