// Package supervisor is the root actor. It spawns the Poller, and for each
// claimed job a JobActor and a LogActor; it watches the engine's event
// stream for their crashes and stops (hollywood tells a parent nothing),
// enforces restart budgets (hollywood's own MaxRestarts kills the
// process), respawns killed children, drains on shutdown and reconciles
// jobs the backend believes this orchestrator owns.
package supervisor

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/job"
	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/actors/logactor"
	"github.com/cronium/orchestrator/actors/poller"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/helpers"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/messages"
	"github.com/cronium/orchestrator/output"
)

// Actor kinds, as PIDs, metrics and the admin API name them (one list, in
// messages).
const (
	KindSupervisor = messages.KindSupervisor
	KindPoller     = messages.KindPoller
	KindJob        = messages.KindJob
	KindLog        = messages.KindLog
)

// Backend is everything the supervisor and its children ask of the backend.
type Backend interface {
	poller.Backend
	job.Reporter
	job.Inquirer
	logactor.Updater
	ReleaseJob(ctx context.Context, jobID, message string) error
	FailJob(ctx context.Context, jobID, errText string, exitCode int) error
}

// Observer receives what operators see in metrics. Implementations must be
// safe for concurrent use.
type Observer interface {
	kit.Observer
	job.Observer
	logactor.Observer
	helpers.Observer
	JobReceived()
	JobFinished(executor, outcome string, d time.Duration)
	// JobsActive reports how many jobs are claimed and not finished.
	JobsActive(n int)
	ActorSpawned(kind string)
	ActorStopped(kind string)
	ActorRestarted(kind string)
	RestartBudgetExhausted(kind string)
	DeadLetter()
}

// Settings tune the supervisor and its children.
type Settings struct {
	OrchestratorID string
	OutputMaxBytes int64
	RecentLines    int
	MaxRestarts    int
	RestartWindow  time.Duration
	// DetachOnShutdown leaves jobs still running at the end of the
	// shutdown grace running, for the next start to re-attach to, instead
	// of stopping them and reporting them failed.
	DetachOnShutdown bool
	Poll             poller.Settings
	Job              job.Settings
	Logs             logactor.Settings
}

// Deps are the supervisor's collaborators.
type Deps struct {
	Backend   Backend
	Executors map[jobspec.Kind]executors.Executor
	Clock     kit.Clock
	Logger    *slog.Logger
	Observer  Observer        // nil: none
	Journal   job.Journal     // nil: jobs are not journaled
	Keeper    logactor.Keeper // nil: output is not kept across restarts
	Recovery  Recovery        // what the earlier process left
	Tasks     *kit.Tasks      // owns every backend call of the tree; nil: kit.Shared
	Helpers   helpers.Backend // behind scripts' runtime helpers; nil: no variables
	LiveLines LiveLines       // nil: no live lines
	Settings  Settings
}

// LiveLines takes jobs' output lines as they are printed, for the UI's
// live view (package livelines).
type LiveLines interface {
	// ForJob is the sink of the job whose metadata.logId is logID; nil
	// when the job has no live view.
	ForJob(logID string) output.LineSink
}

// state is everything that must survive the supervisor's own restarts.
type state struct {
	self     *actor.PID
	children map[string]*child // by PID id
	runs     map[string]*job.Run
	pending  map[string]*job.Run // finished, but /complete is still owed
	pollerSt *poller.State
	// slots freed while no poller instance was alive
	freedWhileDown int
	logStates      map[string]*logactor.State
	recovering     map[string]bool // orphans being failed
	// finished remembers jobs this process ended, by when: an orphan
	// check answered with rows read before a job finished would
	// otherwise end it a second time.
	finished map[string]time.Time
	drain    *drainState
	// recovered says the journal was read: once per process, not per
	// supervisor restart.
	journalRecovered bool

	// For the admin API: the supervisor's own start and restarts (it
	// cannot see its own crash events; its Producer counts them) and the
	// latest restarts of any actor.
	startedAt  time.Time
	restarts   atomic.Int32
	restartLog []messages.RestartEvent
}

// child is a supervised actor.
type child struct {
	kind      string
	jobID     string
	pid       *actor.PID
	startedAt time.Time
	restarts  int
	budget    *budget
	stopping  bool // the supervisor stopped it; do not respawn
	gaveUp    bool
	// failOnStop: the job actor was stopped for crashing even while giving
	// up; once it is gone the supervisor ends the job with this reason.
	failOnStop string
}

type drainState struct {
	grace time.Duration
	done  chan struct{}
	timer kit.Timer
}

// Messages private to the supervisor.
type (
	drainDeadline struct{}
	respawnPoller struct{}
	// excessReleased: the release of these excess jobs is over.
	excessReleased struct{ ids []string }
)

// Supervisor is one instance of the root actor.
type Supervisor struct {
	st     *state
	deps   Deps
	obs    Observer
	log    *slog.Logger
	engine *actor.Engine
}

// Spawn starts the supervisor (and through it the whole tree) on engine.
func Spawn(engine *actor.Engine, deps Deps) *actor.PID {
	if deps.Observer == nil {
		deps.Observer = nopObserver{}
	}
	if deps.Journal == nil {
		deps.Journal = job.NoJournal
	}
	st := &state{
		children:   map[string]*child{},
		runs:       map[string]*job.Run{},
		pending:    map[string]*job.Run{},
		logStates:  map[string]*logactor.State{},
		recovering: map[string]bool{},
		finished:   map[string]time.Time{},
		pollerSt:   poller.NewState(max(deps.Settings.Poll.Capacity-deps.Recovery.active(), 0)),
		startedAt:  deps.Clock.Now(),
	}
	var instances atomic.Int32
	producer := func() actor.Receiver {
		if instances.Add(1) > 1 { // called again: hollywood restarted us
			st.restarts.Add(1)
			deps.Observer.ActorRestarted(KindSupervisor)
			st.noteRestart(messages.RestartEvent{At: deps.Clock.Now(), PID: KindSupervisor + "/root",
				Kind: KindSupervisor, Reason: "crashed (the panic is in the log)"})
		}
		return &Supervisor{st: st, deps: deps, obs: deps.Observer, log: deps.Logger}
	}
	deps.Observer.ActorSpawned(KindSupervisor)
	return engine.Spawn(producer, KindSupervisor, kit.SpawnOpts(KindSupervisor, "root", deps.Observer)...)
}

func (s *Supervisor) Receive(c *actor.Context) {
	switch msg := kit.Message(c).(type) {
	case actor.Started:
		s.engine, s.st.self = c.Engine(), c.PID()
		// Also after our own restart: the old instance unsubscribed.
		s.engine.Subscribe(c.PID())
		if !s.st.journalRecovered {
			s.st.journalRecovered = true
			s.recoverJournal(c)
		}
		if s.childOfKind(KindPoller) == nil && s.st.drain == nil {
			s.spawnPoller(c)
		}
	case actor.Stopped:
		s.engine.Unsubscribe(c.PID())
	case messages.JobsClaimed:
		s.onJobsClaimed(c, msg)
	case messages.JobFinished:
		s.onJobFinished(msg)
	case messages.JobInterrupted:
		s.onInterrupted(msg)
	case messages.JobsUnreadable:
		s.failUnreadable(msg)
	case messages.JobsExcess:
		s.releaseExcess(msg)
	case excessReleased:
		for _, id := range msg.ids {
			delete(s.st.recovering, id)
		}
	case messages.OrphansFound:
		s.onOrphans(msg)
	case messages.CancelJob:
		found := s.cancelJob(msg)
		if c.Sender() != nil {
			c.Respond(found)
		}
	case messages.Drain:
		s.onDrain(msg)
	case drainDeadline:
		s.onDrainDeadline()
	case respawnPoller:
		if s.childOfKind(KindPoller) == nil && s.st.drain == nil {
			s.spawnPoller(c)
		}
	case recovered:
		delete(s.st.recovering, msg.jobID)
		if msg.ended {
			delete(s.st.pending, msg.jobID)
			s.st.finished[msg.jobID] = s.deps.Clock.Now()
		}
	case messages.ListActors:
		c.Respond(s.tree())
	case messages.ListJobs:
		c.Respond(s.jobList(msg.Lines))
	case actor.ActorRestartedEvent:
		s.onRestarted(msg)
	case actor.ActorStoppedEvent:
		s.onStopped(c, msg)
	case actor.DeadLetterEvent:
		s.obs.DeadLetter()
	}
}

func (s *Supervisor) childOfKind(kind string) *child {
	for _, ch := range s.st.children {
		if ch.kind == kind {
			return ch
		}
	}
	return nil
}

func (s *Supervisor) spawn(c *actor.Context, kind, id, jobID string, p actor.Producer) *child {
	pid := c.SpawnChild(p, kind, kit.SpawnOpts(kind, id, s.obs)...)
	ch := s.st.children[pid.ID]
	if ch == nil {
		ch = &child{kind: kind, jobID: jobID, pid: pid,
			budget: newBudget(s.deps.Settings.MaxRestarts, s.deps.Settings.RestartWindow)}
		s.st.children[pid.ID] = ch
	}
	ch.startedAt, ch.stopping = s.deps.Clock.Now(), false
	s.obs.ActorSpawned(kind)
	return ch
}

func (s *Supervisor) spawnPoller(c *actor.Context) {
	deps := poller.Deps{Backend: s.deps.Backend, Clock: s.deps.Clock, Logger: s.log.With("actor", KindPoller),
		Settings: s.deps.Settings.Poll, Supervisor: s.st.self, Tasks: s.deps.Tasks}
	ch := s.spawn(c, KindPoller, "main", "", poller.New(s.st.pollerSt, deps))
	if n := s.st.freedWhileDown; n > 0 {
		s.st.freedWhileDown = 0
		kit.Send(s.engine, ch.pid, messages.SlotsFreed{N: n})
	}
}

// stopChild stops a child for good.
func (s *Supervisor) stopChild(ch *child) {
	if ch == nil || ch.stopping {
		return
	}
	ch.stopping = true
	s.engine.Poison(ch.pid)
}

func (s *Supervisor) cancelJob(m messages.CancelJob) bool {
	ch := s.st.children[s.childID(KindJob, m.JobID)]
	if ch == nil || s.st.runs[m.JobID] == nil {
		return false
	}
	kit.Send(s.engine, ch.pid, m)
	return true
}

// childID is the PID id hollywood gives a child: parent/kind/id.
func (s *Supervisor) childID(kind, id string) string {
	return s.st.self.ID + "/" + kind + "/" + id
}

// tree is the supervisor's view of its actors, for the admin API.
func (s *Supervisor) tree() messages.ActorTree {
	t := messages.ActorTree{Actors: []messages.ActorInfo{{PID: s.st.self.ID, Kind: KindSupervisor, State: "running",
		Restarts: int(s.st.restarts.Load()), StartedAt: s.st.startedAt}}}
	for _, ch := range s.st.children {
		info := messages.ActorInfo{PID: ch.pid.ID, Kind: ch.kind, JobID: ch.jobID, State: "running",
			Restarts: ch.restarts, StartedAt: ch.startedAt}
		if ch.stopping {
			info.State = "stopping"
		}
		if run := s.st.runs[ch.jobID]; run != nil && ch.kind == KindJob {
			info.State = run.Status().Phase
		}
		t.Actors = append(t.Actors, info)
	}
	t.Restarts = append([]messages.RestartEvent(nil), s.st.restartLog...)
	return t
}

// callTimeout bounds one backend call the supervisor makes itself, beyond
// the client's own retry budget.
const callTimeout = 5 * time.Minute

// complete delivers a completion the JobActor could not, off the actor.
func (s *Supervisor) complete(run *job.Run, c backend.Completion) {
	engine, self, b, log, journal := s.engine, s.st.self, s.deps.Backend, s.log, s.deps.Journal
	s.deps.Tasks.Or().Go(callTimeout, "complete job", func(ctx context.Context) error {
		return b.CompleteJob(ctx, run.JobID(), c)
	}, func(err error) {
		if err != nil {
			log.Error("could not deliver the job's completion; will retry", "job_id", run.JobID(), "err", err)
			run.CompleteFailed()
		} else {
			run.MarkCompleted()
			if err := journal.Remove(run.JobID()); err != nil {
				log.Error("could not remove the job's journal entry", "job_id", run.JobID(), "err", err)
			}
		}
		kit.Send(engine, self, recovered{jobID: run.JobID(), ended: err == nil})
	})
}
