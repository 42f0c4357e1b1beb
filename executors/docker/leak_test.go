package docker

import (
	"context"
	"errors"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/cronium/orchestrator/executors"
)

// TestRunLeavesNoGoroutines runs before the parallel tests, so the count is
// this test's own: once the client's idle connections are closed, every
// goroutine a Run started must be gone.
func TestRunLeavesNoGoroutines(t *testing.T) {
	d := newDockerEnv(t)
	before := runtime.NumGoroutine()
	e := d.executor(func(o *Options) { o.Logger = nil })
	ctx := t.Context()

	if _, err := e.Run(ctx, d.spec(executors.Bash, "echo ok"), executors.Output{}); err != nil {
		t.Fatal(err)
	}
	// Cancel and detach a running script, not one still being set up.
	cancelled, cancel := context.WithCancelCause(ctx)
	o := newOutput()
	wait := runAsync(t, cancelled, e, d.spec(executors.Bash, "echo start; sleep 600"), o.writers())
	o.stdout.waitContains(t, "start\n")
	cancel(executors.ErrCancelled)
	if res, err := wait(); err != nil || !res.Cancelled {
		t.Fatalf("cancel: %+v, %v", res, err)
	}
	spec := d.spec(executors.Bash, "echo start; sleep 600")
	detached, detach := context.WithCancelCause(ctx)
	o = newOutput()
	wait = runAsync(t, detached, e, spec, o.writers())
	o.stdout.waitContains(t, "start\n")
	detach(executors.ErrDetached)
	if _, err := wait(); !errors.Is(err, executors.ErrDetached) {
		t.Fatalf("detach: %v", err)
	}
	if err := e.Abandon(ctx, spec); err != nil {
		t.Fatal(err)
	}
	_ = e.Close()

	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		t.Errorf("%d goroutines left over (before: %d)", n-before, before)
	}
}
