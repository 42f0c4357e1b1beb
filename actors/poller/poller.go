// Package poller is the Poller actor: it claims jobs from the backend, at
// most as many as there are free slots, and reconciles jobs the backend
// lists as owned by this orchestrator (orphans).
//
// Polls and orphan checks never overlap: a job claimed by a poll whose
// response is still on its way must not look like an orphan.
//
// Long polling: once the backend's answer announced that it holds polls
// (backend.Polled.MaxWait, the embedded backend's extension), each poll
// asks it to hold the request until a job is claimable, up to
// Settings.LongPollWait (see pollWait): a job is claimed the moment it is
// queued, and an idle poller polls about once per wait instead of once per
// PollInterval. Against a backend that answers at once (the real one),
// polling is by interval as before. StopPolling cancels a held poll rather
// than wait for it: if the backend claimed jobs just as the poll was
// cancelled, their answer is lost and they stay claimed under our id,
// like after any lost answer; the orphan check at the next start releases
// them.
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
	// Poll claims up to batchSize jobs; a backend that holds polls waits
	// up to wait for one (see backend.Client.Poll).
	Poll(ctx context.Context, batchSize int, wait time.Duration) (backend.Polled, error)
	OrphanedJobs(ctx context.Context) ([]backend.JobRow, error)
}

// Settings tune polling.
type Settings struct {
	Capacity       int
	PollInterval   time.Duration // wait after an empty poll the backend answered at once
	MaxBackoff     time.Duration // longest wait after failed polls
	OrphanInterval time.Duration // 0: reconcile at start-up only
	// LongPollWait is the longest a poll asks a backend that holds polls
	// to hold it (backend.LongPollWait of the request timeout); 0: never.
	LongPollWait time.Duration
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
	nextOrphanCheck time.Time     // zero: at once
	backendMaxWait  time.Duration // the backend holds polls this long at most (its last answer said); 0: it does not
	poll            pollInFlight

	mu     sync.Mutex
	result any // the finished call's answer, until an instance takes it
}

// NewState starts with every slot free and an orphan check due.
func NewState(capacity int) *State { return &State{free: capacity} }

// pollInFlight is the poll whose answer is awaited.
type pollInFlight struct {
	wait    time.Duration // asked of the backend; 0: answer at once
	started time.Time
	cancel  context.CancelFunc
}

type (
	tick        struct{}
	resultReady struct{}
	polled      struct {
		jobs    []backend.Job
		maxWait time.Duration
		err     error
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
		if p := a.st.poll; p.wait > 0 && p.cancel != nil {
			p.cancel() // a held poll is not waited for (see the package comment)
		}
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
	wait := pollWait(a.deps.Settings, st.backendMaxWait, st.nextOrphanCheck.Sub(now))
	stopped, cancel := context.WithCancel(context.Background())
	st.poll = pollInFlight{wait: wait, started: now, cancel: cancel}
	b := a.deps.Backend
	a.goDo(func(ctx context.Context) any {
		ctx, cancelCall := context.WithCancel(ctx)
		defer cancelCall()
		defer context.AfterFunc(stopped, cancelCall)()
		p, err := b.Poll(ctx, n, wait)
		return polled{jobs: p.Jobs, maxWait: p.MaxWait, err: err}
	})
}

func (a *Actor) onPolled(m polled) {
	st := a.st
	st.busy = false
	asked, held := st.poll.wait, a.deps.Clock.Now().Sub(st.poll.started)
	if st.poll.cancel != nil {
		st.poll.cancel()
	}
	st.poll = pollInFlight{}
	var bad *backend.BadJobsError
	if errors.As(m.err, &bad) {
		// Claimed but undecodable: they must still end, with the reason.
		a.deps.Logger.Error("claimed jobs could not be read: those with an id are failed, "+
			"the others are released by the next orphan check", "err", bad)
		kit.Send(a.engine, a.deps.Supervisor, messages.JobsUnreadable{IDs: bad.IDs, Reasons: bad.Reasons,
			Reason: bad.Err.Error()})
		m.err = nil
	}
	if m.err != nil && st.stopped {
		return // cancelled by StopPolling, or failed after it: no more polls
	}
	if m.err != nil {
		st.failures++
		wait := min(a.deps.Settings.PollInterval<<min(st.failures, 16), a.deps.Settings.MaxBackoff)
		a.deps.Logger.Warn("poll failed", "err", m.err, "failures", st.failures, "retry_in", wait)
		a.schedule(wait)
		return
	}
	st.failures = 0
	a.learnMaxWait(m.maxWait)
	if len(m.jobs) == 0 {
		if d := idleWait(a.deps.Settings, asked, held, m.maxWait); d > 0 {
			a.schedule(d)
		} else {
			a.next() // the backend held the poll: ask it to hold the next one
		}
		return
	}
	var excess []backend.Job
	if keep := max(st.free, 0); len(m.jobs) > keep {
		// More than the free slots asked for (a backend must not): the
		// rest would run beyond the capacity. They are claimed under our
		// id all the same: the supervisor hands them back, after it has
		// taken the others (the same job may be in both).
		m.jobs, excess = m.jobs[:keep], m.jobs[keep:]
	}
	st.free -= len(m.jobs)
	kit.Send(a.engine, a.deps.Supervisor, messages.JobsClaimed{Jobs: m.jobs, ClaimedAt: a.deps.Clock.Now()})
	if len(excess) > 0 {
		kit.Send(a.engine, a.deps.Supervisor, messages.JobsExcess{Jobs: excess, Kept: len(m.jobs)})
	}
	a.next() // the queue had work: ask again at once
}

// learnMaxWait keeps what the backend's answer said of holding polls,
// and says when that changes.
func (a *Actor) learnMaxWait(maxWait time.Duration) {
	was := a.st.backendMaxWait
	a.st.backendMaxWait = maxWait
	switch {
	case maxWait > 0 && was == 0:
		a.deps.Logger.Info("the backend holds polls until a job is claimable: long polling",
			"backend_max_wait", maxWait, "poll_wait", longPollWait(a.deps.Settings, maxWait))
	case maxWait == 0 && was > 0:
		a.deps.Logger.Info("the backend answers polls at once: polling every interval",
			"poll_interval", a.deps.Settings.PollInterval)
	}
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
