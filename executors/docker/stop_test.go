package docker

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/cronium/orchestrator/executors"
)

// signalsAfter is a client whose signals wait until the script has printed
// its start line: a signal that arrived before the script installed its
// trap would test bash's default, not the executor. It records when each
// signal went out.
type signalsAfter struct {
	apiClient
	out  *output
	line string

	mu   sync.Mutex
	sent map[string]time.Time
}

func (c *signalsAfter) ContainerKill(ctx context.Context, id, signal string) error {
	if err := c.out.await(ctx, func(stdout, _ []byte) bool { return bytes.Contains(stdout, []byte(c.line)) }); err != nil {
		return err
	}
	err := c.apiClient.ContainerKill(ctx, id, signal)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sent == nil {
		c.sent = map[string]time.Time{}
	}
	c.sent[signal] = time.Now()
	return err
}

func (c *signalsAfter) at(signal string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.sent[signal]
	return at, ok
}

// TestRunTimeoutSendsTERM: the script's own TERM handler runs, and the
// commands it waits on are stopped with it.
func TestRunTimeoutSendsTERM(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Bash, `trap 'echo "got TERM"; exit 143' TERM; echo start; sleep 600 & wait`)
	spec.Timeout = time.Second
	o := newOutput()
	gate := &signalsAfter{out: o, line: "start\n"}
	// A grace far beyond the test's run: a KILL would mean TERM did not
	// stop the script.
	e := d.executorWrapping(func(api apiClient) apiClient { gate.apiClient = api; return gate },
		func(o *Options) { o.StopGrace = 5 * time.Minute })
	res, err := e.Run(t.Context(), spec, o.writers())
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.Cancelled || res.Reason != "timed out after 1s" || res.Signal != "TERM" || res.ExitCode != 143 {
		t.Errorf("result = %+v", res)
	}
	if o.stdout.String() != "start\ngot TERM\n" {
		t.Errorf("stdout = %q", o.stdout.String())
	}
	if _, killed := gate.at("SIGKILL"); killed {
		t.Error("SIGKILL sent: the script did not stop on SIGTERM")
	}
	d.requireNoContainer(spec.ExecutionID)
}

// TestRunTimeoutEscalatesToKILL: a script that ignores SIGTERM is killed
// after the grace period.
func TestRunTimeoutEscalatesToKILL(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Bash, `trap '' TERM; echo start; while :; do sleep 1; done`)
	spec.Timeout = time.Second
	o := newOutput()
	gate := &signalsAfter{out: o, line: "start\n"}
	const grace = 2 * time.Second
	e := d.executorWrapping(func(api apiClient) apiClient { gate.apiClient = api; return gate },
		func(o *Options) { o.StopGrace = grace })
	res, err := e.Run(t.Context(), spec, o.writers())
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.ExitCode != 137 || res.Signal != "KILL" || o.stdout.String() != "start\n" {
		t.Errorf("result = %+v, stdout %q", res, o.stdout.String())
	}
	term, _ := gate.at("SIGTERM")
	kill, ok := gate.at("SIGKILL")
	if !ok || kill.Sub(term) < grace {
		t.Errorf("SIGKILL %s after SIGTERM, want the grace (%s)", kill.Sub(term), grace)
	}
	d.requireNoContainer(spec.ExecutionID)
}

// startsSlowly is a client whose containers take a while to start, as on a
// busy engine.
type startsSlowly struct {
	apiClient
	delay    time.Duration
	returned time.Time // when the start call returned
}

func (c *startsSlowly) ContainerStart(ctx context.Context, id string, opts container.StartOptions) error {
	select {
	case <-time.After(c.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	err := c.apiClient.ContainerStart(ctx, id, opts)
	c.returned = time.Now()
	return err
}

// TestTimeoutCountsFromContainerStart pins when a job's timeout starts:
// once its container has started. Creating and starting the container are
// not the script's time, however long a busy engine takes.
func TestTimeoutCountsFromContainerStart(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Bash, `echo ok`)
	spec.Timeout = 5 * time.Second
	slow := &startsSlowly{delay: spec.Timeout + time.Second}
	e := d.executorWrapping(func(api apiClient) apiClient { slow.apiClient = api; return slow })
	o := newOutput()
	res, err := e.Run(t.Context(), spec, o.writers())
	mustSucceed(t, res, err, o)
	if res.Timings.ExecStarted.Before(slow.returned) {
		t.Errorf("the clock started at %s, before the container had (%s)",
			res.Timings.ExecStarted.Format(time.StampMicro), slow.returned.Format(time.StampMicro))
	}
	d.requireNoContainer(spec.ExecutionID)
}

func TestRunCancelled(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Bash, `echo start; sleep 60`)
	ctx, cancel := context.WithCancelCause(context.Background())
	o := newOutput()
	wait := runAsync(t, ctx, d.executor(), spec, o.writers())
	o.stdout.waitContains(t, "start\n")
	cancel(executors.ErrCancelled)
	res, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if !res.Cancelled || res.TimedOut || res.Reason != "cancelled" || res.Succeeded() {
		t.Errorf("result = %+v", res)
	}
	d.requireNoContainer(spec.ExecutionID)
}

func TestRunCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Bash, `echo should not run`)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("shutting down"))
	o := newOutput()
	res, err := d.executor().Run(ctx, spec, o.writers())
	if err != nil || !res.Cancelled || res.Exited || o.stdout.Len() != 0 ||
		res.Reason != "cancelled before the script started: shutting down" {
		t.Errorf("result %+v, err %v, stdout %q", res, err, o.stdout.String())
	}
	d.requireNoContainer(spec.ExecutionID)
}

// TestRunCancelledWhileResuming: a cancel that reaches a Run while it picks
// up a running container stops it like any other cancel, with SIGTERM and
// the grace period, rather than leaving it behind or killing it as if the
// script had never started.
func TestRunCancelledWhileResuming(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	e := d.executor(func(o *Options) { o.StopGrace = 10 * time.Second })
	spec := d.spec(executors.Bash, `trap 'echo "got TERM"; exit 143' TERM; echo start; sleep 60 & wait`)
	o := newOutput()
	detachWhen(t, d, e, spec, o, "start", func(stdout, _ []byte) bool { return len(stdout) > 0 })
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("job deleted")) // every call of the resume sees it
	spec.Resume = executors.Resume{Resuming: true, StdoutBytes: o.stdout.Len(), StderrBytes: o.stderr.Len()}
	res, err := e.Run(ctx, spec, o.writers())
	if err != nil || !res.Cancelled || !res.Exited || res.ExitCode != 143 || res.Signal != "TERM" ||
		res.Reason != "cancelled: job deleted" {
		t.Errorf("result %+v, err %v", res, err)
	}
	if o.stdout.String() != "start\ngot TERM\n" {
		t.Errorf("stdout = %q", o.stdout.String())
	}
	d.requireNoContainer(spec.ExecutionID)
}

// TestRunCancelCauseInReason: a cause other than ErrCancelled is named.
func TestRunCancelCauseInReason(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Bash, `echo start; sleep 60`)
	ctx, cancel := context.WithCancelCause(context.Background())
	o := newOutput()
	wait := runAsync(t, ctx, d.executor(), spec, o.writers())
	o.stdout.waitContains(t, "start\n")
	cancel(errors.New("job deleted"))
	res, err := wait()
	if err != nil || !res.Cancelled || !strings.Contains(res.Reason, "job deleted") {
		t.Errorf("result %+v, err %v", res, err)
	}
	d.requireNoContainer(spec.ExecutionID)
}

func TestAbandon(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	e := d.executor()
	spec := d.spec(executors.Bash, `echo start; sleep 60`)
	ctx, detach := context.WithCancelCause(context.Background())
	o := newOutput()
	wait := runAsync(t, ctx, e, spec, o.writers())
	o.stdout.waitContains(t, "start\n")
	detach(executors.ErrDetached)
	if _, err := wait(); !errors.Is(err, executors.ErrDetached) {
		t.Fatalf("err = %v, want ErrDetached", err)
	}
	if n := len(d.containers(spec.ExecutionID)); n != 1 {
		t.Fatalf("%d containers after detach, want 1", n)
	}
	for range 2 { // idempotent
		if err := e.Abandon(context.Background(), spec); err != nil {
			t.Fatal(err)
		}
	}
	d.requireNoContainer(spec.ExecutionID)
}

// TestDetachedContainerStopsAtItsTimeout: a container left running by a
// detach (an orchestrator that exits and never comes back) does not
// outlive its timeout and the stop grace: the container enforces them too.
func TestDetachedContainerStopsAtItsTimeout(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	e := d.executor()
	spec := d.spec(executors.Bash, `trap '' TERM; echo start; while :; do sleep 1; done`)
	spec.Timeout = 2 * time.Second
	ctx, detach := context.WithCancelCause(t.Context())
	o := newOutput()
	wait := runAsync(t, ctx, e, spec, o.writers())
	o.stdout.waitContains(t, "start\n")
	detach(executors.ErrDetached)
	if _, err := wait(); !errors.Is(err, executors.ErrDetached) {
		t.Fatalf("err = %v, want ErrDetached", err)
	}
	t.Cleanup(func() { _ = e.Abandon(context.WithoutCancel(t.Context()), spec) })
	cs := d.containers(spec.ExecutionID)
	if len(cs) != 1 {
		t.Fatalf("%d containers after detach, want 1", len(cs))
	}
	// Only a container that never stops fails this bound.
	wctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	waited, errs := d.cli.ContainerWait(wctx, cs[0].ID, container.WaitConditionNotRunning)
	select {
	case w := <-waited:
		if w.StatusCode != 137 {
			t.Errorf("exit status %d, want 137 (killed)", w.StatusCode)
		}
	case err := <-errs:
		t.Fatalf("wait: %v", err)
	}
	info, err := d.cli.ContainerInspect(t.Context(), cs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	started, _ := time.Parse(time.RFC3339Nano, info.State.StartedAt)
	finished, _ := time.Parse(time.RFC3339Nano, info.State.FinishedAt)
	if ran := finished.Sub(started); ran < spec.Timeout {
		t.Errorf("the container ran %s, less than its timeout %s", ran, spec.Timeout)
	}
}
