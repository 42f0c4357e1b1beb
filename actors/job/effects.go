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
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/messages"
	"github.com/cronium/orchestrator/output"
)

// effect is one thing the lifecycle asks the JobActor to do.
type effect = any

// stepTimeout bounds one backend step beyond the client's own retry budget.
const stepTimeout = 10 * time.Minute

// do carries out one effect of the lifecycle, on the actor's goroutine.
// st is the state that asked for it. An effect that is answered at once
// returns its event; the others answer later with a message, or never.
func (a *Actor) do(e effect, st State, now time.Time) any {
	r := a.run
	switch e := e.(type) {
	case effPlan:
		return a.plan()
	case effFetchCredentials:
		serverID := r.job.Execution.Target.ServerID.String()
		policy := a.deps.Settings.Mask
		a.step(st.StepSeq, stepCredentials, func(ctx context.Context) (func(*Run), error) {
			d, err := a.deps.Inquirer.ServerCredentials(ctx, serverID)
			if err != nil {
				return nil, err
			}
			return func(r *Run) {
				r.job.Execution.Target.ServerDetails = &d
				r.out.SetMasker(policy.ForJob(r.job)) // the credentials are secrets too
			}, nil
		})
	case effRegister:
		jobID, execs := r.job.ID, r.plan.Executions
		a.step(st.StepSeq, stepRegister, func(ctx context.Context) (func(*Run), error) {
			for _, x := range execs {
				body := backend.ExecutionCreate{JobID: jobID, ServerID: x.ServerID, ServerName: x.ServerName}
				if err := a.deps.Reporter.CreateExecution(ctx, x.ID, body); err != nil {
					return nil, err
				}
			}
			return nil, nil
		})
	case effMarkRunning:
		// Sent exactly once: the backend resets startedAt on every call.
		jobID := r.job.ID
		details := backend.StatusDetails{Message: "running on orchestrator " + a.deps.Settings.OrchestratorID}
		a.step(st.StepSeq, stepMarkRunning, func(ctx context.Context) (func(*Run), error) {
			return nil, a.deps.Reporter.UpdateJobStatus(ctx, jobID, backend.StatusRunning, details)
		})
	case effObserveRunning:
		if a.deps.Observer != nil {
			a.deps.Observer.JobRunning(string(r.plan.Kind), st.StartedAt.Sub(r.claimedAt))
		}
	case effJournal:
		return evJournaled{Stage: e.Stage, Err: a.save(st, e.Stage)}
	case effStartAttempt:
		a.startAttempt(e, st)
	case effStopAttempt:
		r.mu.Lock()
		if r.current != nil {
			r.current.cancel(e.Cause)
		}
		r.mu.Unlock()
		a.log.Info("stopping the execution", "cause", e.Cause)
	case effCheckCancelLater:
		a.after(&a.cancelTimer, a.deps.Settings.CancelCheckInterval, checkCancel{})
	case effInterrupted:
		a.log.Warn("execution interrupted; the supervisor decides whether it resumes", "err", e.Err)
		kit.Send(a.engine, a.supervisor, messages.JobInterrupted{JobID: r.job.ID, Reason: e.Err.Error()})
	case effAbandon:
		a.abandon(st.StepSeq, e.Started)
	case effArmResume:
		a.after(&a.resumeTimer, e.After, advance{})
	case effBuildCompletion:
		a.observeCost(st)
		c := a.completion(st, now)
		r.mu.Lock()
		r.completion = &c
		r.mu.Unlock()
	case effFinalizeOutput:
		var res executors.Result
		if st.Outcome != nil {
			res = st.Outcome.Result
		}
		scriptOutput, condition := a.report()
		kit.Send(a.engine, a.logActor, messages.FinalizeOutput{ExitCode: e.Verdict.exitCode, Reason: e.Verdict.reason,
			Result: res, ScriptOutput: scriptOutput, Condition: condition, ReplyTo: a.self})
		a.after(&a.finalizeTimer, a.deps.Settings.FinalizeTimeout, finalizeTimeout{})
	case effResetOutput:
		kit.Send(a.engine, a.logActor, messages.ResetOutput{ReplyTo: a.self})
	case effRetried:
		a.log.Info("job failed; retrying by its policy", "try", st.Tries, "retry_in", st.RetryIn)
		if a.deps.Observer != nil {
			a.deps.Observer.JobRetried()
		}
	case effNewExecution:
		return a.newExecution(now)
	case effComplete:
		a.complete(st.StepSeq)
	case effFinished:
		a.finished(e, st, now)
	case effLogStepFailed:
		if e.Step == stepNone {
			a.log.Error("could not journal the job", "err", e.Err)
		} else {
			a.log.Error("job step failed", "step", e.Step.String(), "err", e.Err)
		}
	default:
		a.log.Error("unknown effect; this is a bug", "effect", fmt.Sprintf("%T", e))
	}
	return nil
}

// plan builds the job's plan, or says what it lacks.
func (a *Actor) plan() evPlanned {
	r := a.run
	plan, err := jobspec.Build(r.job, r.execID, a.deps.Settings.DefaultTimeout)
	switch {
	case errors.Is(err, jobspec.ErrNeedsCredentials):
		return evPlanned{NeedsCreds: true}
	case err != nil:
		return evPlanned{Err: err}
	}
	if asked := r.job.Execution.Timeout.Duration(); asked > plan.Spec.Timeout {
		a.log.Warn("job timeout beyond the maximum; clamped", "timeout", asked, "max", plan.Spec.Timeout)
	}
	r.mu.Lock()
	r.plan = &plan
	r.mu.Unlock()
	a.ensureHelpers()
	ev := evPlanned{Servers: len(plan.Spec.Servers), Policy: r.job.Execution.RetryPolicy}
	if a.deps.Executors[plan.Kind] == nil {
		ev.Disabled = fmt.Errorf("%s jobs are disabled on this orchestrator", plan.Kind)
	}
	return ev
}

// step runs one backend call in a goroutine of the tree's Tasks, not of
// this actor instance: a crash of the actor does not interrupt it, and the
// next instance waits for it (awaitInFlight) instead of starting it again.
// fn returns what its answer changes in the Run; the actor applies it.
func (a *Actor) step(seq int, s step, fn func(ctx context.Context) (func(*Run), error)) {
	r := a.run
	p := &pendingStep{seq: seq, done: make(chan struct{})}
	r.mu.Lock()
	r.pending = p
	r.mu.Unlock()
	engine, self := a.engine, a.self
	a.tasks.Go(stepTimeout, s.String(), func(ctx context.Context) error {
		apply, err := fn(ctx)
		p.apply = apply
		return err
	}, func(err error) {
		p.err = err
		close(p.done)
		kit.Send(engine, self, stepAnswer{seq: seq})
	})
}

// startAttempt runs the executor. A later attempt asks the executor to
// resume from exactly the bytes already kept, so no output is lost or
// repeated.
func (a *Actor) startAttempt(e effStartAttempt, st State) {
	r := a.run
	exec := a.deps.Executors[r.plan.Kind]
	if e.ResetOutput {
		// A multi-server run keeps no per-server offsets across a restart
		// of the process: its spools are replayed from the start.
		r.out.Reset()
	}
	stats := r.out.Stats()
	spec := r.plan.Spec
	if r.helpers != nil {
		spec.Helpers = r.helpers
	}
	spec.Resume = executors.Resume{Resuming: e.Resume, StdoutBytes: stats.StdoutBytes,
		StderrBytes: stats.StderrBytes, Started: st.Launched}
	spec.KeepFinished = true // released once the completion is sent (see release)
	ctx, cancel := context.WithCancelCause(context.Background())
	if e.Cancel != nil {
		cancel(cancelCause(e.Cancel))
	}
	att := &attempt{n: e.N, cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	r.current = att
	r.mu.Unlock()
	engine, self := a.engine, a.self
	out := executors.Output{Stdout: r.out.Writer(output.Stdout), Stderr: r.out.Writer(output.Stderr),
		Started: func() {
			att.launched.Store(true)
			kit.Send(engine, self, launched{})
		}}
	a.log.Info("executing", "attempt", e.N, "spec", spec)
	// The run belongs to the Run, not to this instance: it goes on across
	// a crash of the actor, and its context (not the tree's) stops it, so
	// that shutting the tree down detaches it instead of cancelling it.
	a.tasks.Start("executor", func() {
		att.err = kit.Safely("executor", func() (err error) {
			att.res, err = exec.Run(ctx, spec, out)
			return err
		})
		cancel(nil)
		close(att.done)
		kit.Send(engine, self, attemptDone{n: e.N})
	})
}

// abandon stops what is left of an execution that will not be resumed;
// the lifecycle then fails the job with the give-up reason.
func (a *Actor) abandon(seq int, started bool) {
	r := a.run
	exec, spec, log := a.deps.Executors[r.plan.Kind], r.plan.Spec, a.log
	a.step(seq, stepAbandon, func(ctx context.Context) (func(*Run), error) {
		if exec != nil && started {
			if err := exec.Abandon(ctx, spec); err != nil {
				log.Warn("could not clean up the abandoned execution", "err", err)
			}
		}
		return nil, nil
	})
}

// checkCancel asks the backend whether the job was cancelled in the UI:
// the backend tells no one.
func (a *Actor) checkCancel() {
	r := a.run
	r.mu.Lock()
	running := r.st.Executing && r.st.Cancel == nil
	r.mu.Unlock()
	if !running {
		return
	}
	engine, self, id := a.engine, a.self, r.job.ID
	var row backend.JobRow
	a.tasks.Go(a.deps.Settings.CancelCheckInterval*4, "cancellation check", func(ctx context.Context) (err error) {
		row, err = a.deps.Inquirer.Acknowledge(ctx, id)
		return err
	}, func(err error) { kit.Send(engine, self, cancelChecked{row: row, err: err}) })
}

// completion is the /complete body: status and exit code by the backend's
// conventions, the kept output with the reason last in stderr (the backend
// shows stderr as the error), and a few numbers.
func (a *Actor) completion(st State, now time.Time) backend.Completion {
	v := st.verdict()
	snap := a.run.out.Snapshot()
	var ms int64
	if !st.StartedAt.IsZero() {
		ms = now.Sub(st.StartedAt).Milliseconds()
	}
	m := map[string]any{
		"durationMs":         ms,
		"attempts":           st.Tries,
		"restarts":           st.Restarts,
		"stdoutBytes":        snap.Stats.StdoutBytes,
		"stderrBytes":        snap.Stats.StderrBytes,
		"outputOmittedBytes": snap.Stats.DroppedBytes,
		"orchestratorId":     a.deps.Settings.OrchestratorID,
	}
	addCost(m, st.cost())
	metrics, _ := json.Marshal(m)
	scriptOutput, condition := a.report()
	stderr := output.AppendNote(snap.Stderr, a.run.out.Masker().Text(v.reason)) // the snapshot is masked already
	return backend.Completion{
		Status:       v.status,
		ExitCode:     v.exitCode,
		Output:       backend.CompletionOutput{Stdout: snap.Stdout, Stderr: stderr},
		Metrics:      metrics,
		ScriptOutput: scriptOutput,
		Condition:    condition,
		Timestamp:    now,
	}
}

// newExecution plans the next try: a new execution record, the executor
// from scratch (not resumed).
func (a *Actor) newExecution(now time.Time) evNewExecution {
	r := a.run
	if release := a.releaser(r.execID); release != nil {
		a.tasks.Go(releaseTimeout, "release the failed try's execution",
			func(ctx context.Context) error { release(ctx); return nil }, func(error) {})
	}
	execID := jobspec.NewExecutionID(r.job.ID, now)
	plan, err := jobspec.Build(r.job, execID, a.deps.Settings.DefaultTimeout)
	if err != nil {
		return evNewExecution{Err: err}
	}
	r.mu.Lock()
	r.execID, r.plan = execID, &plan
	r.mu.Unlock()
	a.log = a.deps.Logger.With("job_id", r.job.ID, "execution_id", execID)
	a.ensureHelpers()
	return evNewExecution{}
}

// complete sends the job's one terminal update. The completion was built
// once and kept, so a retry (by a later instance or by the supervisor)
// sends exactly the same thing.
func (a *Actor) complete(seq int) {
	r := a.run
	r.mu.Lock()
	c := *r.completion
	r.mu.Unlock()
	j, log := a.deps.Journal, a.log
	release := a.releaser(r.execID)
	a.step(seq, stepComplete, func(ctx context.Context) (func(*Run), error) {
		if err := a.deps.Reporter.CompleteJob(ctx, r.job.ID, c); err != nil {
			return nil, err
		}
		if release != nil {
			rctx, cancel := context.WithTimeout(ctx, releaseTimeout)
			release(rctx)
			cancel()
		}
		forget(j, r.job.ID, log)
		return nil, nil
	})
}

// releaseTimeout bounds the removal of a failed try's execution; the
// executor bounds each of its calls itself.
const releaseTimeout = time.Minute

// releaser returns what removes the execution execID left for its result
// to be read again (Spec.KeepFinished); nil when nothing is left. It is
// called once the result is kept for good: after /complete, before the
// journal forgets the job, or when a retry starts a new execution. A
// failure leaves a container or a spool for the executors' sweeps of
// dangling ones, never a job unreported.
func (a *Actor) releaser(execID string) func(ctx context.Context) {
	r := a.run
	r.mu.Lock()
	plan, job, outcome := r.plan, r.job, r.st.Outcome
	r.mu.Unlock()
	if outcome != nil && outcome.Err != nil {
		return nil // it did not run to its end: the executor, or the give-up, removed what it left
	}
	if plan == nil { // restored with its completion owed: the plan was not rebuilt
		p, err := jobspec.Build(job, execID, a.deps.Settings.DefaultTimeout)
		if err != nil {
			return nil
		}
		plan = &p
	}
	exec, log := a.deps.Executors[plan.Kind], a.log
	var spec executors.Spec
	switch {
	case exec == nil:
		return nil
	case plan.Kind == jobspec.KindContainer:
		spec = executors.Spec{JobID: job.ID, ExecutionID: execID}
	case plan.Kind == jobspec.KindSSH:
		spec = plan.Spec // its servers: the spools are on them
	default:
		return nil // HTTP executions keep nothing once finished
	}
	return func(ctx context.Context) {
		if err := exec.Abandon(ctx, spec); err != nil {
			log.Warn("could not remove the finished execution", "execution_id", execID, "err", err)
		}
	}
}

// finished tells the supervisor, which stops this actor and its log actor.
func (a *Actor) finished(e effFinished, st State, now time.Time) {
	r := a.run
	r.mu.Lock()
	if r.finished.IsZero() {
		r.finished = now
	}
	end, kind, c := r.finished, "none", r.completion
	if r.plan != nil {
		kind = string(r.plan.Kind)
	}
	r.mu.Unlock()
	label := e.Verdict.outcome
	if st.Outcome == nil && c != nil {
		// Restored with its completion owed: the verdict is in it.
		label = outcomeOfStatus(c.Status)
	}
	d := end.Sub(r.claimedAt)
	if !st.StartedAt.IsZero() {
		d = end.Sub(st.StartedAt)
	}
	kit.Send(a.engine, a.supervisor, messages.JobFinished{JobID: r.job.ID, Executor: kind, Outcome: label, Duration: d})
}

// after arms one of the actor's timers to send msg to itself; the timer it
// replaces is stopped.
func (a *Actor) after(t *kit.Timer, d time.Duration, msg any) {
	if *t != nil {
		(*t).Stop()
	}
	engine, self := a.engine, a.self
	*t = a.deps.Clock.AfterFunc(d, func() { kit.Send(engine, self, msg) })
}
