package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/cronium/orchestrator/executors"
)

// execution is one Run call.
type execution struct {
	e    *Executor
	spec executors.Spec
	plan *plan
	out  executors.Output
	log  *slog.Logger

	id      string // the container's id, once known
	started bool   // id was reported started (see Observer)
	// freshStart: adopt removed a container the script never reached, so
	// the job starts afresh even though an earlier Run started one.
	freshStart bool
	timings    executors.Timings
}

// session is a started container Run follows until it exits.
type session struct {
	output *stream
	wait   *waiter
	exited bool    // it had already exited when this Run found it
	replay *replay // set when the output comes from the log, not attach
}

// close stops following the container, without touching the container.
func (s *session) close(grace time.Duration) {
	s.output.close(grace)
	s.wait.stop()
}

// errCancelledEarly is a cancellation before the script started; Run turns
// it into a Cancelled result.
var errCancelledEarly = errors.New("cancelled before the script started")

func (x *execution) run(ctx context.Context) (executors.Result, error) {
	x.timings.SetupStarted = time.Now()
	x.log.Debug("run", "spec", x.spec)
	var res executors.Result
	release, err := x.e.turns.take(ctx, x.spec.ExecutionID)
	if err != nil {
		if err = x.setupFailed(ctx, err); errors.Is(err, errCancelledEarly) {
			return executors.Result{Cancelled: true, Reason: cancelReason(context.Cause(ctx), "before the script started")}, nil
		}
		return res, fmt.Errorf("docker executor: waiting for the earlier run of this execution: %w", err)
	}
	defer release()
	s, err := x.setup(ctx)
	switch {
	case err == nil:
		res, err = x.supervise(ctx, s)
	case errors.Is(err, errCancelledEarly):
		res, err = executors.Result{Cancelled: true, Reason: cancelReason(context.Cause(ctx), "before the script started")}, nil
	}
	switch {
	case x.id == "":
	case keepContainer(err):
		x.log.Info("leaving the container for a later run", "container_id", shortID(x.id), "reason", err)
	case err == nil && x.started && x.spec.KeepFinished:
		x.log.Debug("leaving the exited container until its result is kept", "container_id", shortID(x.id))
	default:
		x.cleanup(ctx)
	}
	res.Timings = x.timings
	if err != nil {
		return res, fmt.Errorf("docker executor: %w", err)
	}
	return res, nil
}

// setup creates and starts the container, or finds the one an earlier Run
// started. A create that finds the name taken adopts that container: the
// contract says an existing execution is resumed, never started twice.
//
// The name can be taken by a container that cannot be found yet: a create
// an earlier process sent just before it died, still in the engine's hands
// (a busy engine takes seconds). Adopting is tried again, backing off,
// until that container shows up or the API timeout has passed.
func (x *execution) setup(ctx context.Context) (*session, error) {
	adopt := x.spec.Resume.Resuming
	wait := backoff.NewExponentialBackOff()
	wait.InitialInterval, wait.MaxInterval = 50*time.Millisecond, time.Second
	deadline := time.Now().Add(x.e.opts.APITimeout)
	for {
		if adopt {
			s, err := x.adopt(ctx)
			if s != nil || err != nil {
				return s, x.setupFailed(ctx, err)
			}
			if x.spec.Resume.Started && !x.freshStart {
				return nil, fmt.Errorf("%w: its container %s is gone: it was removed while no orchestrator "+
					"followed it, so how the script ended is unknown", executors.ErrNotResumable, x.plan.name)
			}
		}
		err := x.createContainer(ctx)
		if !errors.Is(err, errNameInUse) {
			if err != nil {
				return nil, x.setupFailed(ctx, err)
			}
			s, err := x.start(ctx)
			return s, x.setupFailed(ctx, err)
		}
		if adopt && time.Now().After(deadline) {
			return nil, fmt.Errorf("container %s: the name stayed taken for %v by a container that could not be "+
				"adopted or removed", x.plan.name, x.e.opts.APITimeout)
		}
		if adopt { // the name's holder was not found, or is being removed: give it time
			select {
			case <-time.After(wait.NextBackOff()):
			case <-ctx.Done():
				return nil, x.setupFailed(ctx, ctx.Err())
			}
		}
		adopt = true
	}
}

// setupFailed classifies a setup error: the caller's cancellation first
// (detach or cancel), then transport failures (retryable).
func (x *execution) setupFailed(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		if errors.Is(cause, executors.ErrDetached) {
			return fmt.Errorf("during setup: %w", cause)
		}
		return errCancelledEarly
	}
	return setupError(err)
}

// supervise waits for the container to exit, stopping it on timeout or
// cancellation, and reads how it ended.
func (x *execution) supervise(ctx context.Context, s *session) (executors.Result, error) {
	defer s.close(x.e.opts.APITimeout)
	var m *meter // what the job costs; nothing is measured of an exited container
	if !s.exited {
		defer x.startRelay(ctx)()
		m = x.e.startMeter(ctx, x.id)
		defer m.stop()
	}
	stop, err := x.waitExit(ctx, s)
	cost := m.stop()
	if err != nil {
		return executors.Result{}, err
	}
	if err := s.output.drain(x.e.opts.APITimeout); err != nil {
		return executors.Result{}, runError(x.id, fmt.Errorf("read container output: %w", err))
	}
	if s.replay != nil {
		if err := x.finishReplay(ctx, s); err != nil {
			return executors.Result{}, runError(x.id, err)
		}
	}
	info, found, err := x.e.inspect(context.WithoutCancel(ctx), x.id)
	switch {
	case err != nil:
		return executors.Result{}, runError(x.id, err)
	case !found:
		return executors.Result{}, fmt.Errorf("%w: container %s was removed before its exit status was read",
			executors.ErrNotResumable, shortID(x.id))
	}
	res := x.result(info, stop, context.Cause(ctx))
	res.Cost = cost
	x.log.Info("container exited", "container_id", shortID(x.id), "result", res.Describe(), "exit_code", res.ExitCode)
	return res, nil
}
