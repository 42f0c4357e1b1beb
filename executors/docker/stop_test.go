package docker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/executors"
)

// TestRunTimeoutSendsTERM: the script's own TERM handler runs, and the
// commands it waits on are stopped with it.
func TestRunTimeoutSendsTERM(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Bash, `trap 'echo "got TERM"; exit 143' TERM; echo start; sleep 60 & wait`)
	spec.Timeout = time.Second
	o := newOutput()
	start := time.Now()
	res, err := d.executor(func(o *Options) { o.StopGrace = 10 * time.Second }).Run(context.Background(), spec, o.writers())
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if !res.TimedOut || res.Cancelled || res.Reason != "timed out after 1s" || res.Signal != "TERM" {
		t.Errorf("result = %+v", res)
	}
	if o.stdout.String() != "start\ngot TERM\n" {
		t.Errorf("stdout = %q", o.stdout.String())
	}
	if took > 5*time.Second {
		t.Errorf("took %v: the script did not stop on SIGTERM", took)
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
	start := time.Now()
	res, err := d.executor().Run(context.Background(), spec, executors.Output{})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if !res.TimedOut || res.ExitCode != 137 || res.Signal != "KILL" {
		t.Errorf("result = %+v", res)
	}
	if took < 2*time.Second || took > 8*time.Second {
		t.Errorf("took %v, want timeout (1s) + grace (1s) and a little", took)
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
