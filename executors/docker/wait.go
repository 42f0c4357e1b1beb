package docker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/cronium/orchestrator/executors"
)

// waiter waits for a container to stop running, in a goroutine stop ends
// and waits for.
type waiter struct {
	cancel context.CancelFunc
	result chan error // receives one value: nil once the container stopped
	done   chan struct{}
}

// startWait waits for the "not-running" condition. It is only called once
// the container has started (a created container is not running either).
// The wait deliberately does not follow ctx: after a cancellation it must
// see the stop sequence through; stop ends it.
func (e *Executor) startWait(ctx context.Context, id string) *waiter {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &waiter{cancel: cancel, result: make(chan error, 1), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		start := time.Now()
		// ContainerWait's own goroutine sends its answer on an unbuffered
		// channel; receiving here until ctx ends makes sure it returns.
		resC, errC := e.api.ContainerWait(ctx, id, container.WaitConditionNotRunning)
		var err error
		select {
		case r := <-resC:
			if r.Error != nil && r.Error.Message != "" {
				err = errors.New(r.Error.Message)
			}
		case err = <-errC:
		}
		if ctx.Err() == nil { // not ended by stop: a real outcome
			e.opts.Observer.APICall("wait", time.Since(start), err)
		}
		w.result <- err
	}()
	return w
}

func (w *waiter) stop() {
	w.cancel()
	<-w.done
}

// stopCause is why Run stopped the container, if it did.
type stopCause int

const (
	notStopped stopCause = iota
	stoppedTimeout
	stoppedCancel
)

// waitExit waits until the container has exited. On timeout or
// cancellation it sends SIGTERM, then SIGKILL after the grace period. On
// detach it returns at once, leaving the container running.
func (x *execution) waitExit(ctx context.Context, s *session) (stopCause, error) {
	var deadline <-chan time.Time
	if x.spec.Timeout > 0 && !s.exited {
		started := x.timings.ExecStarted
		if started.IsZero() {
			started = time.Now()
		}
		t := time.NewTimer(time.Until(started.Add(x.spec.Timeout)))
		defer t.Stop()
		deadline = t.C
	}
	var grace, killed <-chan time.Time
	cause := notStopped
	done := ctx.Done()
	for {
		select {
		case err := <-s.wait.result:
			if err != nil {
				return cause, runError(x.id, fmt.Errorf("wait for container: %w", err))
			}
			if x.timings.ExecCompleted.IsZero() {
				x.timings.ExecCompleted = time.Now()
			}
			return cause, nil
		case err := <-s.output.result():
			s.output.record(err)
			if err != nil {
				return cause, runError(x.id, fmt.Errorf("read container output: %w", err))
			}
		case <-deadline:
			deadline = nil
			if cause == notStopped && x.signal(ctx, "SIGTERM") {
				x.log.Info("timed out; stopping container", "timeout", x.spec.Timeout)
				cause, grace = stoppedTimeout, time.After(x.e.opts.StopGrace)
			}
		case <-done:
			done = nil
			c := context.Cause(ctx)
			if errors.Is(c, executors.ErrDetached) {
				return cause, fmt.Errorf("container %s: %w", shortID(x.id), c)
			}
			if cause == notStopped && x.signal(ctx, "SIGTERM") {
				x.log.Info("cancelled; stopping container", "cause", c)
				cause, grace = stoppedCancel, time.After(x.e.opts.StopGrace)
			}
		case <-grace:
			grace = nil
			x.signal(ctx, "SIGKILL")
			killed = time.After(x.e.opts.APITimeout)
		case <-killed:
			return cause, executors.Retryable(fmt.Errorf("container %s did not exit after SIGKILL", shortID(x.id)))
		}
	}
}
