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
	ctx := context.Background()

	if _, err := e.Run(ctx, d.spec(executors.Bash, "echo ok"), executors.Output{}); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancelCause(ctx)
	time.AfterFunc(300*time.Millisecond, func() { cancel(executors.ErrCancelled) })
	if res, err := e.Run(cancelled, d.spec(executors.Bash, "sleep 60"), executors.Output{}); err != nil || !res.Cancelled {
		t.Fatalf("cancel: %+v, %v", res, err)
	}
	spec := d.spec(executors.Bash, "sleep 60")
	detached, detach := context.WithCancelCause(ctx)
	time.AfterFunc(300*time.Millisecond, func() { detach(executors.ErrDetached) })
	if _, err := e.Run(detached, spec, executors.Output{}); !errors.Is(err, executors.ErrDetached) {
		t.Fatalf("detach: %v", err)
	}
	if err := e.Abandon(ctx, spec); err != nil {
		t.Fatal(err)
	}
	_ = e.Close()

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		t.Errorf("%d goroutines left over (before: %d)", n-before, before)
	}
}
