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
	"github.com/cronium/orchestrator/jobspec"
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
}

// Settings tune a JobActor.
type Settings struct {
	DefaultTimeout      time.Duration
	CancelCheckInterval time.Duration
	BackoffInitial      time.Duration // before a restarted actor resumes
	BackoffMax          time.Duration
	FinalizeTimeout     time.Duration // how long to wait for the log actor's final update
	OrchestratorID      string
}

// Deps are what a JobActor needs; one Deps serves every job.
type Deps struct {
	Reporter  Reporter
	Inquirer  Inquirer
	Executors map[jobspec.Kind]executors.Executor
	Clock     kit.Clock
	Logger    *slog.Logger
	Observer  Observer // may be nil
	Journal   Journal  // nil: NoJournal
	Settings  Settings
}

// Messages private to the JobActor.
type (
	advance       struct{}
	stepDone      struct{}
	attemptDone   struct{ n int }
	checkCancel   struct{}
	cancelChecked struct {
		row backend.JobRow
		err error
	}
	finalizeTimeout struct{}
)

// Actor is one instance of a JobActor; everything that must survive it is
// in run.
type Actor struct {
	run  *Run
	deps Deps
	log  *slog.Logger

	logActor   *actor.PID
	supervisor *actor.PID
	engine     *actor.Engine
	self       *actor.PID

	resumeAt      time.Time
	resumeTimer   kit.Timer
	cancelTimer   kit.Timer
	finalizeTimer kit.Timer
}

// New returns the producer of a job's actor. The same producer serves
// hollywood's restarts and the supervisor's respawns.
func New(run *Run, deps Deps, logActor, supervisor *actor.PID) actor.Producer {
	if deps.Journal == nil {
		deps.Journal = NoJournal
	}
	return func() actor.Receiver {
		return &Actor{run: run, deps: deps, logActor: logActor, supervisor: supervisor,
			log: deps.Logger.With("job_id", run.JobID(), "execution_id", run.execID)}
	}
}

// Receive never blocks: executor runs and backend calls happen in
// goroutines that report back with messages.
func (a *Actor) Receive(c *actor.Context) {
	switch msg := kit.Message(c).(type) {
	case actor.Started:
		a.engine, a.self = c.Engine(), c.PID()
		a.onStarted()
	case actor.Stopped:
		a.onStopped()
	case advance, stepDone:
		a.advance()
	case attemptDone:
		a.onAttemptDone()
	case checkCancel:
		a.checkCancel()
	case cancelChecked:
		a.onCancelChecked(msg)
	case messages.CancelJob:
		a.requestCancel(msg.Reason, msg.Shutdown)
	case messages.GiveUpJob:
		a.giveUp(msg.Reason)
	case messages.OutputFinalized:
		a.onFinalized(false)
	case messages.OutputReset:
		a.nextTry()
	case finalizeTimeout:
		a.onFinalized(true)
	}
}

func (a *Actor) onStarted() {
	r := a.run
	r.mu.Lock()
	r.instances++
	restarts := r.instances - 1
	r.mu.Unlock()
	if restarts > 0 {
		// A replacement instance: give whatever broke (a dropped
		// connection, a restarting daemon) time before resuming.
		delay := backoff(a.deps.Settings.BackoffInitial, a.deps.Settings.BackoffMax, restarts)
		a.resumeAt = a.deps.Clock.Now().Add(delay)
		a.log.Info("job actor restarted; resuming the job", "restarts", restarts, "resume_in", delay)
	}
	a.send(advance{})
}

func (a *Actor) onStopped() {
	for _, t := range []kit.Timer{a.resumeTimer, a.cancelTimer, a.finalizeTimer} {
		if t != nil {
			t.Stop()
		}
	}
	// Crash, kill or normal stop: the execution (if any is in flight) keeps
	// running for the next instance. Only cancel and give-up stop it.
	a.run.detachCurrent()
}

func (a *Actor) send(msg any) { kit.Send(a.engine, a.self, msg) }

// backoff doubles per restart from initial, up to max.
func backoff(initial, max time.Duration, restarts int) time.Duration {
	d := initial
	for i := 1; i < restarts && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
