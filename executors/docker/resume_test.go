package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
)

// detachWhen runs spec until cond holds for its output, then detaches.
func detachWhen(t *testing.T, d *dockerEnv, e *Executor, spec executors.Spec, o *output, what string, cond func(stdout, stderr []byte) bool) {
	t.Helper()
	ctx, detach := context.WithCancelCause(context.Background())
	wait := runAsync(t, ctx, e, spec, o.writers())
	o.waitFor(t, what, cond)
	detach(executors.ErrDetached)
	_, err := wait()
	if !errors.Is(err, executors.ErrDetached) || executors.IsRetryable(err) {
		t.Fatalf("err = %v, want ErrDetached", err)
	}
	if n := len(d.containers(spec.ExecutionID)); n != 1 {
		t.Fatalf("%d containers after detach, want 1", n)
	}
}

// resume runs spec again with the offsets of what o already holds.
func resume(e *Executor, spec executors.Spec, o *output) (executors.Result, error) {
	spec.Resume = executors.Resume{Resuming: true, StdoutBytes: o.stdout.Len(), StderrBytes: o.stderr.Len()}
	return e.Run(context.Background(), spec, o.writers())
}

func TestResumeAfterDetachMidOutput(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	rec := &recorder{}
	e := d.executor(func(o *Options) { o.Observer = rec })
	spec := d.spec(executors.Bash, `for i in $(seq 1 300); do echo "out $i"; echo "err $i" >&2; sleep 0.005; done`)
	o := newOutput()
	detachWhen(t, d, e, spec, o, "some output", func(stdout, _ []byte) bool {
		return bytes.Contains(stdout, []byte("out 40\n"))
	})
	before := d.containers(spec.ExecutionID)[0].ID

	res, err := resume(e, spec, o)
	mustSucceed(t, res, err, o)
	if want := lines(300, "out %d\n"); o.stdout.String() != want {
		t.Errorf("stdout is not exact: %d bytes, want %d", o.stdout.Len(), len(want))
	}
	if want := lines(300, "err %d\n"); o.stderr.String() != want {
		t.Errorf("stderr is not exact: %d bytes, want %d", o.stderr.Len(), len(want))
	}
	if rec.count("create") != 1 || rec.started != 1 || rec.count("logs") != 2 {
		t.Errorf("calls %v, started %d: want one create, one start, two logs (follow, then the rest)", rec.calls, rec.started)
	}
	if rec.removed != 1 {
		t.Errorf("removed %d containers, want 1 (%s)", rec.removed, before[:12])
	}
	d.requireNoContainer(spec.ExecutionID)
}

func TestResumeExitedContainer(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	e := d.executor()
	spec := d.spec(executors.Bash, `echo first; sleep 1; echo second; echo oops >&2; exit 7`)
	o := newOutput()
	detachWhen(t, d, e, spec, o, "first line", func(stdout, _ []byte) bool { return len(stdout) > 0 })

	id := d.containers(spec.ExecutionID)[0].ID
	waitC, errC := d.cli.ContainerWait(context.Background(), id, container.WaitConditionNotRunning)
	select {
	case <-waitC:
	case err := <-errC:
		t.Fatal(err)
	}
	res, err := resume(e, spec, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 7 || res.TimedOut || o.stdout.String() != "first\nsecond\n" || o.stderr.String() != "oops\n" {
		t.Errorf("result %+v stdout %q stderr %q", res, o.stdout.String(), o.stderr.String())
	}
	if res.Timings.ExecStarted.IsZero() || !res.Timings.ExecCompleted.After(res.Timings.ExecStarted) {
		t.Errorf("timings from the daemon missing: %+v", res.Timings)
	}
	d.requireNoContainer(spec.ExecutionID)
}

// TestLogsReplayMatchesAttach: what a resumed Run replays from the log
// driver is byte for byte what the attached Run saw.
func TestLogsReplayMatchesAttach(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	e := d.executor()
	// stderr ends with a long line and its newline, the case replay.go
	// cannot tell from the log alone.
	wantOut := binaryPayload(3)
	wantErr := append(binaryPayload(4), append(bytes.Repeat([]byte("e"), 40<<10), '\n')...)
	spec := d.spec(executors.Bash, emitScript(wantOut, wantErr, "sleep 1"))
	attached := newOutput()
	detachWhen(t, d, e, spec, attached, "all output", func(stdout, stderr []byte) bool {
		return len(stdout) == len(wantOut) && len(stderr) == len(wantErr)
	})
	replayed := newOutput()
	spec.Resume = executors.Resume{Resuming: true}
	res, err := e.Run(context.Background(), spec, replayed.writers())
	mustSucceed(t, res, err, replayed)
	if !bytes.Equal(attached.stdout.Bytes(), wantOut) || !bytes.Equal(attached.stderr.Bytes(), wantErr) {
		t.Error("attached output differs from what the script wrote")
	}
	if !bytes.Equal(replayed.stdout.Bytes(), wantOut) || !bytes.Equal(replayed.stderr.Bytes(), wantErr) {
		t.Errorf("replayed output differs: stdout %d/%d bytes, stderr %d/%d bytes",
			replayed.stdout.Len(), len(wantOut), replayed.stderr.Len(), len(wantErr))
	}
}

// TestResumeGetsUnterminatedTail: output without a final newline, written
// as the script exits, reaches a resumed Run (Docker 20.10's follow stream
// loses it; see finishReplay).
func TestResumeGetsUnterminatedTail(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	e := d.executor()
	spec := d.spec(executors.Bash, `echo head; sleep 1; printf tail; printf 'err tail' >&2`)
	o := newOutput()
	detachWhen(t, d, e, spec, o, "head", func(stdout, _ []byte) bool { return len(stdout) > 0 })
	res, err := resume(e, spec, o)
	mustSucceed(t, res, err, o)
	if o.stdout.String() != "head\ntail" || o.stderr.String() != "err tail" {
		t.Errorf("stdout %q stderr %q", o.stdout.String(), o.stderr.String())
	}
}

// TestRunAdoptsExistingContainer: a Run that does not know an earlier one
// started the execution still finds it by name instead of starting it twice.
func TestRunAdoptsExistingContainer(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	rec := &recorder{}
	e := d.executor(func(o *Options) { o.Observer = rec })
	spec := d.spec(executors.Bash, `echo once; sleep 1; echo done`)
	first := newOutput()
	detachWhen(t, d, e, spec, first, "first line", func(stdout, _ []byte) bool { return len(stdout) > 0 })
	again := newOutput()
	res, err := e.Run(context.Background(), spec, again.writers())
	mustSucceed(t, res, err, again)
	if again.stdout.String() != "once\ndone\n" || rec.started != 1 {
		t.Errorf("stdout %q, %d starts", again.stdout.String(), rec.started)
	}
}

// TestResumeRecreatesNeverStartedContainer: a container an earlier Run
// created but never started is replaced, since its stdin may be spent.
func TestResumeRecreatesNeverStartedContainer(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	e := d.executor()
	spec := d.spec(executors.Bash, `echo fresh`)
	p, err := e.plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := e.create(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	spec.Resume = executors.Resume{Resuming: true}
	o := newOutput()
	res, err := e.Run(context.Background(), spec, o.writers())
	mustSucceed(t, res, err, o)
	if o.stdout.String() != "fresh\n" {
		t.Errorf("stdout %q", o.stdout.String())
	}
	if _, err := d.cli.ContainerInspect(context.Background(), stale); err == nil {
		t.Error("the never-started container is still there")
	}
	d.requireNoContainer(spec.ExecutionID)
}

// removalInProgress reports the stale container as "removing" when it is
// first inspected, as the engine does while an earlier process's remove is
// still in its hands (a kill -9 right after a detached setup discarded its
// container). The removal itself is real: it happens after the executor's
// first create has met the name still taken.
type removalInProgress struct {
	apiClient
	cli      *client.Client
	stale    string
	reported bool
	removed  bool
	mu       sync.Mutex
}

func (r *removalInProgress) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	info, err := r.apiClient.ContainerInspect(ctx, id)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && info.ContainerJSONBase != nil && info.ID == r.stale && !r.reported {
		r.reported = true
		info.State.Status = "removing"
	}
	return info, err
}

func (r *removalInProgress) ContainerCreate(ctx context.Context, cfg *container.Config, host *container.HostConfig,
	net *network.NetworkingConfig, platform *ocispec.Platform, name string,
) (container.CreateResponse, error) {
	resp, err := r.apiClient.ContainerCreate(ctx, cfg, host, net, platform, name)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reported && !r.removed {
		r.removed = true
		if rerr := r.cli.ContainerRemove(ctx, r.stale, container.RemoveOptions{Force: true}); rerr != nil {
			return resp, fmt.Errorf("test: remove the stale container: %w", rerr)
		}
	}
	return resp, err
}

// TestResumeWaitsOutARemovalInProgress: a container found being removed
// is handled as gone. The job starts afresh once the name is free, or,
// when the journal says it had started, ends not resumable (that case
// ended so before the change too; started=false tells them apart).
func TestResumeWaitsOutARemovalInProgress(t *testing.T) {
	t.Parallel()
	for _, started := range []bool{false, true} {
		t.Run(fmt.Sprintf("started=%v", started), func(t *testing.T) {
			t.Parallel()
			d := newDockerEnv(t)
			tap := &removalInProgress{cli: d.cli}
			e := d.executorWrapping(func(api apiClient) apiClient { tap.apiClient = api; return tap })
			spec := d.spec(executors.Bash, `echo fresh`)
			p, err := e.plan(spec)
			if err != nil {
				t.Fatal(err)
			}
			if tap.stale, err = e.create(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = d.cli.ContainerRemove(context.Background(), tap.stale, container.RemoveOptions{Force: true})
			})
			spec.Resume = executors.Resume{Resuming: true, Started: started}
			o := newOutput()
			res, err := e.Run(context.Background(), spec, o.writers())
			if !tap.reported {
				t.Fatal("the executor never inspected the stale container")
			}
			if started {
				if !errors.Is(err, executors.ErrNotResumable) || executors.IsRetryable(err) {
					t.Fatalf("Run: %+v, %v; want not resumable", res, err)
				}
				return
			}
			mustSucceed(t, res, err, o)
			if o.stdout.String() != "fresh\n" || !tap.removed {
				t.Errorf("stdout %q, stale container removed by the test: %v", o.stdout.String(), tap.removed)
			}
			d.requireNoContainer(spec.ExecutionID)
		})
	}
}

func TestResumeWithoutContainerStartsIt(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Bash, `echo ran`)
	spec.Resume = executors.Resume{Resuming: true}
	o := newOutput()
	res, err := d.executor().Run(context.Background(), spec, o.writers())
	mustSucceed(t, res, err, o)
	if o.stdout.String() != "ran\n" {
		t.Errorf("stdout = %q", o.stdout.String())
	}
}

// TestConnectionDropIsRetryable cuts the daemon connection mid-run: Run
// fails retryably, the container lives on, and a resumed Run finishes it.
func TestConnectionDropIsRetryable(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	host := d.cli.DaemonHost()
	u, err := client.ParseHostURL(host)
	if err != nil {
		t.Fatal(err)
	}
	if (u.Scheme != "unix" && u.Scheme != "tcp") || os.Getenv("DOCKER_TLS_VERIFY") != "" || os.Getenv("DOCKER_CERT_PATH") != "" {
		testenv.Unavailable(t, "the proxy forwards plain unix and tcp daemon connections, have %s", host)
	}
	p := startProxy(t, u.Scheme, u.Host)
	viaProxy := d.executor(func(o *Options) { o.Host = "unix://" + p.path })
	spec := d.spec(executors.Bash, `echo started; sleep 2; echo finished; exit 4`)
	o := newOutput()
	wait := runAsync(t, context.Background(), viaProxy, spec, o.writers())
	o.stdout.waitContains(t, "started\n")
	p.cut()
	_, err = wait()
	if !executors.IsRetryable(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	if n := len(d.containers(spec.ExecutionID)); n != 1 {
		t.Fatalf("%d containers after the drop, want 1", n)
	}
	res, err := resume(d.executor(), spec, o)
	if err != nil || res.ExitCode != 4 || o.stdout.String() != "started\nfinished\n" {
		t.Errorf("resumed: %+v, %v, stdout %q", res, err, o.stdout.String())
	}
	d.requireNoContainer(spec.ExecutionID)
}

// proxy forwards a unix socket to the daemon's socket or TCP address and
// can cut every connection, as a daemon restart would.
type proxy struct {
	path    string
	network string // of the target: unix or tcp
	target  string
	ln      net.Listener
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
}

func startProxy(t *testing.T, network, target string) *proxy {
	p := &proxy{path: t.TempDir() + "/docker.sock", network: network, target: target}
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial(p.network, p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(u, c)
		go p.pipe(c, u)
	}
}

// pipe copies and passes a half-close on, as attach's stdin needs.
func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// Recovering an earlier process's job: Abandon with only the job id removes
// every container of that job this orchestrator started, and no other.
func TestAbandonByJobID(t *testing.T) {
	d := newDockerEnv(t)
	e := d.executor()
	other := d.executor(func(o *Options) { o.OrchestratorID = "someone-else" })
	spec := d.spec(executors.Bash, "echo started; sleep 60")
	otherSpec := spec
	otherSpec.ExecutionID += "-other"
	started := func(stdout, _ []byte) bool { return bytes.Contains(stdout, []byte("started")) }
	detachWhen(t, d, e, spec, newOutput(), "start", started)
	detachWhen(t, d, other, otherSpec, newOutput(), "start", started)

	if err := e.Abandon(context.Background(), executors.Spec{JobID: spec.JobID}); err != nil {
		t.Fatal(err)
	}
	d.requireNoContainer(spec.ExecutionID)
	if len(d.containers(otherSpec.ExecutionID)) != 1 {
		t.Fatal("abandoned another orchestrator's container")
	}
	if err := other.Abandon(context.Background(), otherSpec); err != nil {
		t.Fatal(err)
	}
	d.requireNoContainer(otherSpec.ExecutionID)
}
