// Package job is the JobActor: one per job, it owns the job's executor run
// and drives its lifecycle (execution record → running → execute → final
// execution update → exactly one /complete). All of its state lives in a
// Run that outlives the actor, so a crashed or killed JobActor is replaced
// by one that resumes the job instead of running it again.
package job

import (
	"context"
	"log/slog"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/helpers"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/mask"
	"github.com/cronium/orchestrator/messages"
)

// Reporter is the part of the backend a job reports to.
type Reporter interface {
	CreateExecution(ctx context.Context, execID string, body backend.ExecutionCreate) error
	UpdateJobStatus(ctx context.Context, jobID, status string, details backend.StatusDetails) error
	CompleteJob(ctx context.Context, jobID string, c backend.Completion) error
}

// Inquirer is the part of the backend a job asks things of.
type Inquirer interface {
	Acknowledge(ctx context.Context, jobID string) (backend.JobRow, error)
	ServerCredentials(ctx context.Context, serverID string) (backend.ServerDetails, error)
}

// Observer is told when a job starts running (for metrics; the supervisor
// reports when it finishes).
type Observer interface {
	JobRunning(executor string, pickup time.Duration)
	JobRetried()
	// JobCost reports what a finished job's execution consumed, once per
	// job, when anything of it was measured.
	JobCost(executor string, c executors.Cost)
}

// Settings tune a JobActor.
type Settings struct {
	DefaultTimeout      time.Duration
	CancelCheckInterval time.Duration
	BackoffInitial      time.Duration // before a restarted actor resumes
	BackoffMax          time.Duration
	FinalizeTimeout     time.Duration // how long to wait for the log actor's final update
	OrchestratorID      string
	// Mask says which secrets the job's output masks (see Run.MaskOutput).
	Mask mask.Policy
}

// Deps are what a JobActor needs; one Deps serves every job.
type Deps struct {
	Reporter  Reporter
	Inquirer  Inquirer
	Executors map[jobspec.Kind]executors.Executor
	Clock     kit.Clock
	Logger    *slog.Logger
	Observer  Observer   // may be nil
	Journal   Journal    // nil: NoJournal
	Tasks     *kit.Tasks // owns backend calls and executor runs; nil: kit.Shared
	// Helpers is the backend behind scripts' runtime helpers (variables,
	// event context); nil: scripts' variable calls fail saying so.
	Helpers        helpers.Backend
	HelperObserver helpers.Observer // may be nil
	Settings       Settings
}

// Messages private to the JobActor.
type (
	advance     struct{}
	stepAnswer  struct{ seq int }
	attemptDone struct{ n int }
	launched    struct{}
	checkCancel struct{}
	// cancelChecked: the backend's answer to the cancellation check.
	cancelChecked struct {
		row backend.JobRow
		err error
	}
	finalizeTimeout struct{}
	// begin: the instance's first message to itself (see Receive).
	begin struct{}
)

// Actor is one instance of a JobActor; everything that must survive it is
// in run.
type Actor struct {
	run     *Run
	deps    Deps
	machine machine
	tasks   *kit.Tasks
	log     *slog.Logger

	logActor   *actor.PID
	supervisor *actor.PID
	engine     *actor.Engine
	self       *actor.PID

	resumeTimer   kit.Timer
	cancelTimer   kit.Timer
	finalizeTimer kit.Timer

	begun bool // see Receive
}

// New returns the producer of a job's actor. The same producer serves
// hollywood's restarts and the supervisor's respawns.
func New(run *Run, deps Deps, logActor, supervisor *actor.PID) actor.Producer {
	if deps.Journal == nil {
		deps.Journal = NoJournal
	}
	m := machine{backoffInitial: deps.Settings.BackoffInitial, backoffMax: deps.Settings.BackoffMax}
	return func() actor.Receiver {
		return &Actor{run: run, deps: deps, machine: m, tasks: deps.Tasks.Or(), logActor: logActor,
			supervisor: supervisor, log: deps.Logger.With("job_id", run.JobID(), "execution_id", run.execID)}
	}
}

// Receive turns messages into events of the lifecycle. It never blocks:
// executor runs and backend calls happen in goroutines that answer with
// messages.
//
// An instance begins with a message to itself, not in Started: hollywood
// runs a new actor's Started in the goroutine that spawned it (the
// supervisor's), and beginning means a durable journal write. A message
// that comes before begin (one buffered across a restart, say) begins the
// instance first, so that the lifecycle sees begin first as it always
// did; the begin that follows is then ignored. Messages are never held
// here: a panic leaves them to hollywood's buffer, as before.
func (a *Actor) Receive(c *actor.Context) {
	switch msg := kit.Message(c).(type) {
	case actor.Initialized:
	case actor.Started:
		a.engine, a.self = c.Engine(), c.PID()
		kit.Send(a.engine, a.self, begin{})
	case actor.Stopped:
		a.onStopped()
	case begin:
		a.ensureBegun()
	default:
		a.ensureBegun()
		a.receive(msg)
	}
}

// ensureBegun begins the instance once.
func (a *Actor) ensureBegun() {
	if a.begun {
		return
	}
	a.begun = true
	a.handle(evBegin{})
	a.awaitInFlight()
}

// receive turns one message of a begun instance into lifecycle events.
func (a *Actor) receive(m any) {
	switch msg := m.(type) {
	case advance:
		a.handle(evAdvance{})
	case stepAnswer:
		a.onStepAnswer(msg.seq)
	case attemptDone:
		a.onAttemptDone(msg.n)
	case launched:
		a.handle(evLaunched{})
	case checkCancel:
		a.checkCancel()
	case cancelChecked:
		if msg.err != nil {
			a.log.Debug("cancellation check failed", "err", msg.err)
		}
		a.handle(evCancelChecked{Cancelled: msg.err == nil && msg.row.Status == backend.StatusCancelled})
	case messages.CancelJob:
		a.handle(evCancel{Reason: msg.Reason, Shutdown: msg.Shutdown})
	case messages.GiveUpJob:
		a.log.Error("giving up on job", "reason", msg.Reason)
		a.handle(evGiveUp{Reason: msg.Reason})
	case messages.ResumeJob:
		a.handle(evResume{})
	case messages.OutputFinalized:
		stop(a.finalizeTimer)
		a.handle(evFinalized{})
	case finalizeTimeout:
		a.log.Warn("final execution update not confirmed in time; completing anyway",
			"timeout", a.deps.Settings.FinalizeTimeout)
		a.handle(evFinalized{})
	case messages.OutputReset:
		a.handle(evOutputReset{})
	}
}

// handle runs the lifecycle on ev and carries out its effects; effects
// that answer at once feed their events back, in order.
func (a *Actor) handle(ev any) {
	r := a.run
	queue := []any{ev}
	for len(queue) > 0 {
		ev, queue = queue[0], queue[1:]
		now := a.deps.Clock.Now()
		r.mu.Lock()
		before := r.st.Phase
		st, effects := a.machine.next(r.st, ev, now)
		r.st = st
		if !st.Executing {
			r.current = nil
		}
		if st.Step == stepNone {
			r.pending = nil
		}
		r.mu.Unlock()
		if st.Phase != before {
			a.log.Debug("job phase", "from", before.String(), "to", st.Phase.String(), "event", kit.TypeName(ev))
		}
		for _, e := range effects {
			if follow := a.do(e, st, now); follow != nil {
				queue = append(queue, follow)
			}
		}
	}
}

// awaitInFlight: a replacement instance waits for the step or attempt an
// earlier instance started; the answer it sent may have reached nobody.
func (a *Actor) awaitInFlight() {
	r := a.run
	r.mu.Lock()
	step, att := r.pending, r.current
	r.mu.Unlock()
	engine, self := a.engine, a.self
	if step != nil {
		a.tasks.Start("await step", func() {
			<-step.done
			kit.Send(engine, self, stepAnswer{seq: step.seq})
		})
	}
	if att != nil {
		a.tasks.Start("await attempt", func() {
			<-att.done
			kit.Send(engine, self, attemptDone{n: att.n})
		})
	}
}

func (a *Actor) onStepAnswer(seq int) {
	r := a.run
	r.mu.Lock()
	p := r.pending
	if p == nil || p.seq != seq || r.st.Step == stepNone || r.st.StepSeq != seq {
		r.mu.Unlock()
		return // taken already
	}
	if p.err == nil && p.apply != nil {
		p.apply(r)
	}
	r.mu.Unlock()
	a.handle(evStepDone{Seq: seq, Err: p.err})
}

func (a *Actor) onAttemptDone(n int) {
	r := a.run
	r.mu.Lock()
	att := r.current
	r.mu.Unlock()
	if att == nil || att.n != n {
		return // taken already
	}
	if att.launched.Load() {
		a.handle(evLaunched{}) // its own message may have reached an instance that is gone
	}
	a.handle(evAttemptEnded{N: n, Result: att.res, Err: att.err})
}

func (a *Actor) onStopped() {
	for _, t := range []kit.Timer{a.resumeTimer, a.cancelTimer, a.finalizeTimer} {
		stop(t)
	}
	// Crash, kill or normal stop: the execution (if any is in flight) keeps
	// running for the next instance. Only cancel and give-up stop it.
	a.run.detachCurrent()
}

func stop(t kit.Timer) {
	if t != nil {
		t.Stop()
	}
}
