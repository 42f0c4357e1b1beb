// Package poller is the Poller actor: it claims jobs from the backend, at
// most as many as there are free slots, and reconciles jobs the backend
// lists as owned by this orchestrator (orphans).
//
// Polls and orphan checks never overlap: a job claimed by a poll whose
// response is still on its way must not look like an orphan.
package poller

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/messages"
)

// Backend is what the poller asks of the backend.
type Backend interface {
	PollJobs(ctx context.Context, batchSize int) ([]backend.Job, error)
	OrphanedJobs(ctx context.Context) ([]backend.JobRow, error)
}

// Settings tune polling.
type Settings struct {
	Capacity       int
	PollInterval   time.Duration // wait after an empty poll
	MaxBackoff     time.Duration // longest wait after failed polls
	OrphanInterval time.Duration // 0: reconcile at start-up only
}

// Deps are the poller's collaborators.
type Deps struct {
	Backend    Backend
	Clock      kit.Clock
	Logger     *slog.Logger
	Settings   Settings
	Supervisor *actor.PID
	Tasks      *kit.Tasks // owns the backend calls; nil: kit.Shared
}

// State survives the poller's restarts and respawns: a new instance must
// not believe every slot is free again, nor lose the answer of a call a
// killed instance started.
type State struct {
	free            int
	busy            bool
	stopped         bool
	failures        int
	nextOrphanCheck time.Time // zero: at once

	mu     sync.Mutex
	result any // the finished call's answer, until an instance takes it
}

// NewState starts with every slot free and an orphan check due.
func NewState(capacity int) *State { return &State{free: capacity} }

type (
	tick        struct{}
	resultReady struct{}
	polled      struct {
		jobs []backend.Job
		err  error
	}
	orphansChecked struct {
		rows []backend.JobRow
		err  error
	}
)

// Actor is one poller instance.
type Actor struct {
	st     *State
	deps   Deps
	engine *actor.Engine
	self   *actor.PID
	timer  kit.Timer
}

// New returns the poller's producer.
func New(st *State, deps Deps) actor.Producer {
	return func() actor.Receiver { return &Actor{st: st, deps: deps} }
}

func (a *Actor) Receive(c *actor.Context) {
	switch msg := kit.Message(c).(type) {
	case actor.Started:
		a.engine, a.self = c.Engine(), c.PID()
		kit.Send(a.engine, a.self, resultReady{}) // an earlier instance's call may have finished
		kit.Send(a.engine, a.self, tick{})
	case actor.Stopped:
		a.stopTimer()
	case tick:
		a.timer = nil
		a.next()
	case messages.SlotsFreed:
		a.st.free = min(a.st.free+msg.N, a.deps.Settings.Capacity)
		a.next()
	case messages.StopPolling:
		a.st.stopped = true
		a.stopTimer()
	case resultReady:
		a.takeResult()
	}
}

// takeResult handles the answer of the call in flight, once.
func (a *Actor) takeResult() {
	a.st.mu.Lock()
	res := a.st.result
	a.st.result = nil
	a.st.mu.Unlock()
	switch m := res.(type) {
	case polled:
		a.onPolled(m)
	case orphansChecked:
		a.onOrphansChecked(m)
	}
}

// next starts the next poll or orphan check, if one may run now.
func (a *Actor) next() {
	st := a.st
	if st.stopped || st.busy {
		return
	}
	now := a.deps.Clock.Now()
	if !st.nextOrphanCheck.After(now) {
		a.checkOrphans()
		return
	}
	if st.free <= 0 {
		return // SlotsFreed wakes us
	}
	a.stopTimer()
	st.busy = true
	n := st.free
	a.goDo(func(ctx context.Context) any {
		jobs, err := a.deps.Backend.PollJobs(ctx, n)
		return polled{jobs: jobs, err: err}
	})
}

func (a *Actor) onPolled(m polled) {
	st := a.st
	st.busy = false
	var bad *backend.BadJobsError
	if errors.As(m.err, &bad) {
		// Claimed but undecodable: they must still end, with the reason.
		kit.Send(a.engine, a.deps.Supervisor, messages.JobsUnreadable{IDs: bad.IDs, Reason: bad.Err.Error()})
		m.err = nil
	}
	if m.err != nil {
		st.failures++
		wait := min(a.deps.Settings.PollInterval<<min(st.failures, 16), a.deps.Settings.MaxBackoff)
		a.deps.Logger.Warn("poll failed", "err", m.err, "failures", st.failures, "retry_in", wait)
		a.schedule(wait)
		return
	}
	st.failures = 0
	if len(m.jobs) == 0 {
		a.schedule(a.deps.Settings.PollInterval)
		return
	}
	st.free -= len(m.jobs)
	kit.Send(a.engine, a.deps.Supervisor, messages.JobsClaimed{Jobs: m.jobs, ClaimedAt: a.deps.Clock.Now()})
	a.next() // the queue had work: ask again at once
}

func (a *Actor) checkOrphans() {
	a.st.busy = true
	a.goDo(func(ctx context.Context) any {
		rows, err := a.deps.Backend.OrphanedJobs(ctx)
		return orphansChecked{rows: rows, err: err}
	})
}

func (a *Actor) onOrphansChecked(m orphansChecked) {
	st := a.st
	st.busy = false
	interval := a.deps.Settings.OrphanInterval
	if m.err != nil {
		a.deps.Logger.Warn("orphan check failed", "err", m.err)
		interval = max(min(interval, a.deps.Settings.MaxBackoff), a.deps.Settings.PollInterval)
	} else {
		kit.Send(a.engine, a.deps.Supervisor, messages.OrphansFound{Rows: m.rows})
	}
	if interval > 0 {
		st.nextOrphanCheck = a.deps.Clock.Now().Add(interval)
	} else {
		st.nextOrphanCheck = time.Unix(1<<62, 0) // start-up only
	}
	a.next()
}

// callTimeout bounds a poll or an orphan check beyond the client's own
// retry budget.
const callTimeout = 10 * time.Minute

// goDo runs one backend call in a goroutine. Its answer is parked in the
// State and announced; an instance that missed the announcement (it was
// killed meanwhile) finds it when it starts.
func (a *Actor) goDo(call func(ctx context.Context) any) {
	engine, self, st := a.engine, a.self, a.st
	var res any
	a.deps.Tasks.Or().Go(callTimeout, "poll", func(ctx context.Context) error {
		res = call(ctx)
		return nil
	}, func(err error) {
		if err != nil { // the call panicked: a failed poll, retried with backoff
			res = polled{err: err}
		}
		st.mu.Lock()
		st.result = res
		st.mu.Unlock()
		kit.Send(engine, self, resultReady{})
	})
}

func (a *Actor) schedule(d time.Duration) {
	a.stopTimer()
	engine, self := a.engine, a.self
	a.timer = a.deps.Clock.AfterFunc(d, func() { kit.Send(engine, self, tick{}) })
}

func (a *Actor) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
}
