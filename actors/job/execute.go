package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/journal"
	"github.com/cronium/orchestrator/output"
)

// RestartError is the panic value with which a JobActor crashes on
// purpose when its execution was interrupted by something a restart can
// heal (a dropped SSH connection, a restarting Docker daemon): the
// supervisor's restart policy then decides whether it resumes.
type RestartError struct{ Err error }

func (e RestartError) Error() string { return "execution interrupted: " + e.Err.Error() }
func (e RestartError) Unwrap() error { return e.Err }

// errGivenUp is the cancellation cause when the restart budget is spent.
var errGivenUp = errors.New("restart budget spent")

// execute starts or resumes the execution, or ends the job when it was
// cancelled, given up on or cannot run.
func (a *Actor) execute() {
	r := a.run
	r.mu.Lock()
	exec := a.deps.Executors[r.plan.Kind]
	switch {
	case r.outcome != nil:
		r.phase = phaseFinalize
	case r.giveUp != "":
		reason, started, spec := r.giveUp, r.attempts > 0, r.plan.Spec
		r.mu.Unlock()
		a.abandon(exec, spec, started, reason)
		return
	case r.cancel != nil && r.attempts == 0:
		r.outcome = &outcome{result: executors.Result{Cancelled: true}}
		r.phase = phaseFinalize
	case exec == nil:
		r.outcome = &outcome{err: fmt.Errorf("%s jobs are disabled on this orchestrator", r.plan.Kind)}
		r.phase = phaseFinalize
	default:
		until := a.resumeAt
		if r.notBefore.After(until) {
			until = r.notBefore // a retry's backoff
		}
		if wait := until.Sub(a.deps.Clock.Now()); wait > 0 {
			r.mu.Unlock()
			a.armResume(wait)
			return
		}
		a.startAttemptLocked(exec)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	a.send(advance{})
}

func (a *Actor) armResume(wait time.Duration) {
	if a.resumeTimer != nil {
		a.resumeTimer.Stop()
	}
	engine, self := a.engine, a.self
	a.resumeTimer = a.deps.Clock.AfterFunc(wait, func() { kit.Send(engine, self, advance{}) })
}

// startAttemptLocked runs the executor in a goroutine the Run owns. A
// later attempt (after a crash) asks the executor to resume from exactly
// the bytes already kept, so no output is lost or repeated.
func (a *Actor) startAttemptLocked(exec executors.Executor) {
	r := a.run
	// Journaled before the executor can start anything: a restart then
	// resumes this execution instead of releasing the job.
	a.journalLocked(journal.Running)
	r.attempts++
	n := r.attempts
	if r.resumed && n == 2 && len(r.plan.Spec.Servers) > 1 {
		// A multi-server run keeps no per-server offsets across a restart
		// of the process: its spools are replayed from the start.
		r.out.Reset()
	}
	stats := r.out.Stats()
	spec := r.plan.Spec
	spec.Resume = executors.Resume{Resuming: n > 1, StdoutBytes: stats.StdoutBytes, StderrBytes: stats.StderrBytes}
	ctx, cancel := context.WithCancelCause(context.Background())
	if r.cancel != nil {
		cancel(cancelCause(r.cancel))
	}
	att := &attempt{n: n, cancel: cancel, done: make(chan struct{})}
	r.current = att
	spec.Resume.Started = r.launched
	out := executors.Output{Stdout: r.out.Writer(output.Stdout), Stderr: r.out.Writer(output.Stderr),
		Started: a.launched}
	engine, self := a.engine, a.self
	a.log.Info("executing", "attempt", n, "spec", spec)
	go func() {
		defer close(att.done)
		var res executors.Result
		err := kit.Safely("executor", func() (err error) {
			res, err = exec.Run(ctx, spec, out)
			return err
		})
		cancel(nil)
		r.mu.Lock()
		switch {
		case err == nil:
			r.outcome = &outcome{result: res}
		case errors.Is(err, executors.ErrDetached) || executors.IsRetryable(err):
			r.lastDetach = err
		default:
			r.outcome = &outcome{result: res, err: err}
		}
		r.current = nil
		r.mu.Unlock()
		kit.Send(engine, self, attemptDone{n: n})
	}()
	a.scheduleCancelCheck()
}

// launched records that the executor started the execution, so that a
// restarted process never runs the script again if it finds the execution
// gone. It runs on the executor's goroutine, not the actor's.
func (a *Actor) launched() {
	r := a.run
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.launched {
		r.launched = true
		a.saveLocked(journal.Running)
	}
}

func (a *Actor) onAttemptDone() {
	r := a.run
	r.mu.Lock()
	err, done := r.lastDetach, r.outcome != nil
	if !done && executors.IsRetryable(err) && !errors.Is(err, executors.ErrDetached) {
		r.lastDetach = nil
		r.mu.Unlock()
		// Crash on purpose: the restart policy handles interruptions.
		panic(RestartError{Err: err})
	}
	r.mu.Unlock()
	a.advance()
}

// abandon stops what is left of an execution that will not be resumed,
// then fails the job with the give-up reason.
func (a *Actor) abandon(exec executors.Executor, spec executors.Spec, started bool, reason string) {
	r := a.run
	a.step("abandon execution", func(ctx context.Context) error {
		if exec != nil && started {
			if err := exec.Abandon(ctx, spec); err != nil {
				a.log.Warn("could not clean up the abandoned execution", "err", err)
			}
		}
		return nil
	}, func() {
		r.outcome = &outcome{err: errors.New(reason)}
		r.phase = phaseFinalize
	})
}

func cancelCause(c *cancelRequest) error {
	return fmt.Errorf("%w: %s", executors.ErrCancelled, c.reason)
}

// requestCancel stops the job; the first reason given is kept.
func (a *Actor) requestCancel(reason string, shutdown bool) {
	r := a.run
	r.mu.Lock()
	if r.phase > phaseExecute || r.cancel != nil {
		r.mu.Unlock()
		return
	}
	r.cancel = &cancelRequest{reason: reason, shutdown: shutdown}
	if r.current != nil {
		r.current.cancel(cancelCause(r.cancel))
	}
	r.mu.Unlock()
	a.log.Info("cancelling job", "reason", reason)
	a.advance()
}

// giveUp is the supervisor's verdict that restarts will not heal the job.
func (a *Actor) giveUp(reason string) {
	r := a.run
	r.mu.Lock()
	if r.phase >= phaseFinalize || r.giveUp != "" {
		r.mu.Unlock()
		return
	}
	r.giveUp = reason
	if r.current != nil {
		r.current.cancel(errGivenUp)
	} else if r.phase < phaseExecute {
		r.outcome = &outcome{err: errors.New(reason)}
	}
	r.mu.Unlock()
	a.log.Error("giving up on job", "reason", reason)
	a.advance()
}

// The backend learns of a UI cancellation only when asked.
func (a *Actor) scheduleCancelCheck() {
	if a.cancelTimer != nil {
		a.cancelTimer.Stop()
	}
	engine, self := a.engine, a.self
	a.cancelTimer = a.deps.Clock.AfterFunc(a.deps.Settings.CancelCheckInterval, func() {
		kit.Send(engine, self, checkCancel{})
	})
}

func (a *Actor) checkCancel() {
	r := a.run
	r.mu.Lock()
	running := r.current != nil && r.cancel == nil
	r.mu.Unlock()
	if !running {
		return
	}
	engine, self, id := a.engine, a.self, r.job.ID
	var row backend.JobRow
	kit.Go(a.deps.Settings.CancelCheckInterval*4, "cancellation check", func(ctx context.Context) (err error) {
		row, err = a.deps.Inquirer.Acknowledge(ctx, id)
		return err
	}, func(err error) { kit.Send(engine, self, cancelChecked{row: row, err: err}) })
}

func (a *Actor) onCancelChecked(m cancelChecked) {
	switch {
	case m.err != nil:
		a.log.Debug("cancellation check failed", "err", m.err)
	case m.row.Status == backend.StatusCancelled:
		a.requestCancel("cancelled in Cronium", false)
		return
	}
	a.scheduleCancelCheck()
}

// buildCompletionLocked is the /complete body: status and exit code by the
// backend's conventions, the kept output with the reason last in stderr
// (the backend shows stderr as the error), and a few numbers.
func (a *Actor) buildCompletionLocked() backend.Completion {
	r := a.run
	v := judge(outcomeOrEmpty(r.outcome), r.cancel, r.giveUp, serverCount(r.plan))
	snap := r.out.Snapshot()
	now := a.deps.Clock.Now()
	var ms int64
	if !r.started.IsZero() {
		ms = now.Sub(r.started).Milliseconds()
	}
	metrics, _ := json.Marshal(map[string]any{
		"durationMs":         ms,
		"attempts":           r.tries,
		"restarts":           max(r.instances-1, 0),
		"stdoutBytes":        snap.Stats.StdoutBytes,
		"stderrBytes":        snap.Stats.StderrBytes,
		"outputOmittedBytes": snap.Stats.DroppedBytes,
		"orchestratorId":     a.deps.Settings.OrchestratorID,
	})
	return backend.Completion{
		Status:    v.status,
		ExitCode:  v.exitCode,
		Output:    backend.CompletionOutput{Stdout: snap.Stdout, Stderr: output.AppendNote(snap.Stderr, v.reason)},
		Metrics:   metrics,
		Timestamp: now,
	}
}
