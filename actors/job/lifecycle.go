package job

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/journal"
	"github.com/cronium/orchestrator/messages"
)

// stepTimeout bounds one backend step beyond the client's own retry budget.
const stepTimeout = 10 * time.Minute

// advance moves the job to its next step. It is idempotent: it does
// nothing while a step or an attempt is in flight, so any message may call
// it, and a new instance calls it to resume.
func (a *Actor) advance() {
	r := a.run
	r.mu.Lock()
	if r.stepBusy || r.current != nil {
		r.mu.Unlock()
		return
	}
	if err := r.stepErr; err != nil {
		r.stepErr = nil
		a.stepFailedLocked(err)
	}
	ph := r.phase
	r.mu.Unlock()

	switch ph {
	case phasePlan:
		a.plan()
	case phaseRegister:
		a.register()
	case phaseStart:
		a.markRunning()
	case phaseExecute:
		a.execute()
	case phaseFinalize:
		a.finalize()
	case phaseComplete:
		a.complete()
	case phaseDone:
		a.finished()
	}
}

// stepFailedLocked decides what a failed backend step means. Before the
// job ran, it ends the job as "could not run"; a failed /complete is left
// for the supervisor to retry (the backend is unreachable).
func (a *Actor) stepFailedLocked(err error) {
	r := a.run
	a.log.Error("job step failed", "phase", r.phase.String(), "err", err)
	switch {
	case r.phase == phaseComplete:
		r.completeErr = err
		r.phase = phaseDone
	case r.phase < phaseExecute:
		r.outcome = &outcome{err: err}
		if r.plan == nil {
			r.phase = phaseComplete // no execution record to finalize
		} else {
			r.phase = phaseFinalize
		}
	}
}

// step runs fn in a goroutine owned by the Run (not by this actor
// instance): a crash of the actor does not interrupt it, and the next
// instance waits for it instead of starting it again. onOK runs under the
// Run's lock when fn succeeded.
func (a *Actor) step(name string, fn func(ctx context.Context) error, onOK func()) {
	r := a.run
	r.mu.Lock()
	r.stepBusy = true
	r.mu.Unlock()
	engine, self := a.engine, a.self
	kit.Go(stepTimeout, name, fn, func(err error) {
		r.mu.Lock()
		r.stepBusy = false
		if err != nil {
			r.stepErr = fmt.Errorf("%s: %w", name, err)
		} else {
			onOK()
		}
		r.mu.Unlock()
		kit.Send(engine, self, stepDone{})
	})
}

func (a *Actor) plan() {
	r := a.run
	plan, err := jobspec.Build(r.job, r.execID, a.deps.Settings.DefaultTimeout)
	if errors.Is(err, jobspec.ErrNeedsCredentials) {
		serverID := r.job.Execution.Target.ServerID.String()
		a.step("fetch server credentials", func(ctx context.Context) error {
			d, err := a.deps.Inquirer.ServerCredentials(ctx, serverID)
			if err == nil {
				r.job.Execution.Target.ServerDetails = &d
			}
			return err
		}, func() {})
		return
	}
	r.mu.Lock()
	switch {
	case err != nil:
		r.outcome = &outcome{err: err}
		r.phase = phaseComplete
	case r.resumed:
		// Restored from the journal: the execution record exists and the
		// backend was told the job runs.
		r.plan = &plan
		r.phase = phaseExecute
	default:
		r.plan = &plan
		r.phase = phaseRegister
		a.journalLocked(journal.Claimed)
	}
	r.mu.Unlock()
	a.send(advance{})
}

func (a *Actor) register() {
	r := a.run
	jobID, execs := r.job.ID, r.plan.Executions
	a.step("create execution", func(ctx context.Context) error {
		for _, e := range execs {
			body := backend.ExecutionCreate{JobID: jobID, ServerID: e.ServerID, ServerName: e.ServerName}
			if err := a.deps.Reporter.CreateExecution(ctx, e.ID, body); err != nil {
				return err
			}
		}
		return nil
	}, func() { r.phase = phaseStart })
}

// markRunning sends status running exactly once: the backend resets the
// job's startedAt on every such call.
func (a *Actor) markRunning() {
	r := a.run
	r.mu.Lock()
	switch {
	case r.outcome != nil: // cancelled or given up before it started
		r.phase = phaseFinalize
	case !r.started.IsZero(): // a retry: the backend knows the job runs
		r.phase = phaseExecute
	default:
		r.mu.Unlock()
		a.markRunningOnce()
		return
	}
	r.mu.Unlock()
	a.send(advance{})
}

func (a *Actor) markRunningOnce() {
	r := a.run
	details := backend.StatusDetails{Message: "running on orchestrator " + a.deps.Settings.OrchestratorID}
	a.step("mark running", func(ctx context.Context) error {
		return a.deps.Reporter.UpdateJobStatus(ctx, r.job.ID, backend.StatusRunning, details)
	}, func() {
		r.phase = phaseExecute
		r.started = a.deps.Clock.Now()
		if a.deps.Observer != nil {
			a.deps.Observer.JobRunning(string(r.plan.Kind), r.started.Sub(r.claimedAt))
		}
	})
}

func (a *Actor) finalize() {
	r := a.run
	r.mu.Lock()
	o := outcomeOrEmpty(r.outcome)
	if r.awaitingReset { // a restarted instance: ask again
		r.mu.Unlock()
		kit.Send(a.engine, a.logActor, messages.ResetOutput{ReplyTo: a.self})
		return
	}
	v := judge(o, r.cancel, r.giveUp, serverCount(r.plan))
	if r.completion == nil && !r.retrying {
		r.retryIn, r.retrying = retryDelay(r.job.Execution.RetryPolicy, r.tries, v)
	}
	if !r.retrying {
		// The result is known: the completion is built now, with the
		// whole output, and journaled, so that a restart still sends it.
		if r.completion == nil {
			c := a.buildCompletionLocked()
			r.completion = &c
		}
		a.journalLocked(journal.Completing)
	}
	r.mu.Unlock()
	kit.Send(a.engine, a.logActor, messages.FinalizeOutput{
		ExitCode: v.exitCode, Reason: v.reason, Result: o.result, ReplyTo: a.self})
	if a.finalizeTimer != nil {
		a.finalizeTimer.Stop()
	}
	engine, self := a.engine, a.self
	a.finalizeTimer = a.deps.Clock.AfterFunc(a.deps.Settings.FinalizeTimeout, func() {
		kit.Send(engine, self, finalizeTimeout{})
	})
}

func (a *Actor) onFinalized(timedOut bool) {
	r := a.run
	r.mu.Lock()
	if r.phase != phaseFinalize || r.awaitingReset {
		r.mu.Unlock()
		return
	}
	if r.retrying {
		a.retryLocked()
		r.mu.Unlock()
		if a.finalizeTimer != nil {
			a.finalizeTimer.Stop()
		}
		return
	}
	r.phase = phaseComplete
	r.mu.Unlock()
	if a.finalizeTimer != nil {
		a.finalizeTimer.Stop()
	}
	if timedOut {
		a.log.Warn("final execution update not confirmed in time; completing anyway",
			"timeout", a.deps.Settings.FinalizeTimeout)
	}
	a.advance()
}

// complete sends the job's one terminal update. The completion is built
// once and kept, so a retry (by a later instance or by the supervisor)
// sends exactly the same thing.
func (a *Actor) complete() {
	r := a.run
	r.mu.Lock()
	if r.completion == nil {
		c := a.buildCompletionLocked()
		r.completion = &c
	}
	c := *r.completion
	r.mu.Unlock()
	a.step("complete", func(ctx context.Context) error {
		if err := a.deps.Reporter.CompleteJob(ctx, r.job.ID, c); err != nil {
			return err
		}
		forget(a.deps.Journal, r, a.log)
		return nil
	}, func() {
		r.completed = true
		r.phase = phaseDone
	})
}

// finished tells the supervisor, which stops this actor and its log actor.
func (a *Actor) finished() {
	r := a.run
	r.mu.Lock()
	if r.finished.IsZero() {
		r.finished = a.deps.Clock.Now()
	}
	executor := "none"
	if r.plan != nil {
		executor = string(r.plan.Kind)
	}
	v := judge(outcomeOrEmpty(r.outcome), r.cancel, r.giveUp, serverCount(r.plan))
	var d = r.finished.Sub(r.claimedAt)
	if !r.started.IsZero() {
		d = r.finished.Sub(r.started)
	}
	r.mu.Unlock()
	kit.Send(a.engine, a.supervisor, messages.JobFinished{
		JobID: r.job.ID, Executor: executor, Outcome: v.outcome, Duration: d})
}

func outcomeOrEmpty(o *outcome) outcome {
	if o == nil {
		return outcome{}
	}
	return *o
}

func serverCount(p *jobspec.Plan) int {
	if p == nil {
		return 0
	}
	return len(p.Spec.Servers)
}
