// Package logactor is the LogActor: one per job, it ships the job's output
// to the backend as execution-update snapshots, batched by lines, bytes and
// time. The backend has no endpoint for log lines: a non-terminal
// PUT /executions/{id}/update with the output so far is how a running job's
// output reaches the UI.
//
// The LogActor sends every execution update of its job, the final one
// included, one request at a time: a late snapshot can never overwrite the
// final update.
package logactor

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/messages"
	"github.com/cronium/orchestrator/output"
)

// Updater is the backend call the LogActor makes.
type Updater interface {
	UpdateExecution(ctx context.Context, execID string, u backend.ExecutionUpdate) error
}

// Observer counts what was shipped (for metrics).
type Observer interface {
	OutputShipped(lines, bytes, droppedBytes int64)
	// OutputMasked counts secrets masked in what was shipped: those the
	// job's output shows beyond what the last snapshot shipped showed.
	OutputMasked(n int)
}

// Keeper keeps what a job's output log holds, so that a restarted
// process carries on from it (see package journal).
type Keeper interface {
	SaveOutput(jobID string, k output.Kept) error
}

// Settings are the batching thresholds: a snapshot is shipped once any
// is reached.
type Settings struct {
	BatchLines    int
	BatchBytes    int64
	BatchInterval time.Duration
}

// Deps serve every LogActor.
type Deps struct {
	Updater  Updater
	Clock    kit.Clock
	Logger   *slog.Logger
	Observer Observer   // may be nil
	Keeper   Keeper     // may be nil: output is not kept across restarts
	Tasks    *kit.Tasks // owns the backend calls; nil: kit.Shared
	Settings Settings
}

// State is what a LogActor keeps across its restarts.
type State struct {
	mu         sync.Mutex
	jobID      string
	out        *output.Log
	executions func() []string

	shipped      output.Stats // as of the last snapshot shipped
	keptBytes    int64        // output held when it was last kept (Stats.Held)
	shippedAt    time.Time    // when the last snapshot's call ended
	masked       int          // secrets masked in the last snapshot shipped
	pendingSince time.Time
	busy         bool
	final        *messages.FinalizeOutput
	finalDone    bool
}

// NewState starts the shipping state of one job. executions lists the
// job's execution records (empty until the job created them).
func NewState(jobID string, out *output.Log, executions func() []string) *State {
	return &State{jobID: jobID, out: out, executions: executions}
}

type (
	flushDue struct{}
	shipped  struct{}
)

// Actor is one LogActor instance.
type Actor struct {
	st     *State
	deps   Deps
	log    *slog.Logger
	engine *actor.Engine
	self   *actor.PID
	timer  kit.Timer
}

// New returns the producer of a job's LogActor.
func New(st *State, deps Deps) actor.Producer {
	return func() actor.Receiver {
		return &Actor{st: st, deps: deps, log: deps.Logger.With("job_id", st.jobID)}
	}
}

func (a *Actor) Receive(c *actor.Context) {
	switch msg := kit.Message(c).(type) {
	case actor.Started:
		a.engine, a.self = c.Engine(), c.PID()
		kit.Send(a.engine, a.self, flushDue{}) // output may have arrived while no instance ran
	case actor.Stopped:
		a.stopTimer()
	case messages.OutputAvailable:
		a.st.out.TakeNudge()
		a.evaluate()
	case flushDue:
		a.timer = nil
		a.evaluate()
	case messages.FinalizeOutput:
		// The job's output ended: a last line without its newline is
		// a line too, for the live view.
		a.st.out.FlushLines()
		a.st.out.End()
		a.st.mu.Lock()
		m := msg
		a.st.final = &m
		done := a.st.finalDone
		a.st.mu.Unlock()
		if done { // a restarted JobActor asks again: answer again
			kit.Send(a.engine, msg.ReplyTo, messages.OutputFinalized{})
			return
		}
		a.evaluate()
	case messages.ResetOutput:
		a.stopTimer() // it may pace the next attempt by the last one's output
		a.st.reset()
		if a.deps.Keeper != nil {
			// The last attempt's kept output would otherwise be restored
			// after a restart, and the next attempt's output skipped by
			// its length.
			if err := a.deps.Keeper.SaveOutput(a.st.jobID, a.st.out.Kept()); err != nil {
				a.log.Warn("could not clear the job's kept output", "err", err)
			}
		}
		kit.Send(a.engine, msg.ReplyTo, messages.OutputReset{})
	case shipped:
		a.evaluate()
	}
}

func (a *Actor) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
}

// reset starts the next attempt of a retried job. It comes after the last
// attempt's final update was shipped, so nothing is in flight.
func (st *State) reset() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.out.Reset()
	st.shipped, st.masked, st.pendingSince, st.keptBytes, st.shippedAt = output.Stats{}, 0, time.Time{}, 0, time.Time{}
	st.final, st.finalDone = nil, false
}

// evaluate ships when a snapshot is due (snapshotDue), else arms the
// flush timer for when it falls due.
func (a *Actor) evaluate() {
	st := a.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.busy {
		return
	}
	if st.final != nil && !st.finalDone {
		a.shipLocked(true)
		return
	}
	stats := st.out.Stats()
	lines, bytes := stats.Lines-st.shipped.Lines, stats.Bytes()-st.shipped.Bytes()
	if bytes == 0 || st.finalDone {
		return
	}
	now := a.deps.Clock.Now()
	if st.pendingSince.IsZero() {
		st.pendingSince = now
	}
	s := a.deps.Settings
	due, wait := snapshotDue(unshipped{lines: lines, bytes: bytes, age: now.Sub(st.pendingSince),
		shippedBytes: st.shipped.Held(), sinceShipped: now.Sub(st.shippedAt)}, s)
	if due {
		if len(st.executions()) > 0 {
			a.shipLocked(false)
			return
		}
		wait = s.BatchInterval // no execution record yet
	}
	if a.timer == nil {
		engine, self := a.engine, a.self
		a.timer = a.deps.Clock.AfterFunc(wait, func() { kit.Send(engine, self, flushDue{}) })
	}
}

// unshipped is the output a snapshot would ship beyond the last one.
type unshipped struct {
	lines, bytes int64
	age          time.Duration // since its oldest byte arrived
	shippedBytes int64         // the last snapshot's size (Stats.Held)
	sinceShipped time.Duration // since the last snapshot's call ended
}

// snapshotPace is how many bytes of snapshot a job may ship per batch
// interval, on average, once its output is large.
const snapshotPace = 4 << 20

// snapshotDue says whether a snapshot ships now, else how long until it
// falls due. A threshold (lines, bytes, the interval) makes it due; a
// large output also paces it: every snapshot carries the whole output
// (the API has no append), so after one of N bytes the next waits
// N/snapshotPace intervals. Unpaced, a job printing 50 MB ships its output
// again every time a call returns, a hundred MB or more that the backend
// decodes and stores while the job runs, taking the CPU the job needs.
// The final update is never paced.
func snapshotDue(u unshipped, s Settings) (bool, time.Duration) {
	wait := s.BatchInterval - u.age
	if u.lines >= int64(s.BatchLines) || u.bytes >= s.BatchBytes {
		wait = 0
	}
	if pace := s.BatchInterval*time.Duration(u.shippedBytes/snapshotPace) - u.sinceShipped; pace > wait {
		wait = pace
	}
	return wait <= 0, wait
}

// shipLocked sends one snapshot (or the final update) in a goroutine. The
// goroutine records what it shipped in the State itself, so a LogActor
// killed meanwhile loses nothing: the next instance carries on from there.
func (a *Actor) shipLocked(final bool) {
	st := a.st
	st.busy = true
	snap, masker := st.out.Snapshot(), st.out.Masker()
	// Kept now and then (keepDue), so the copy a restart starts from may
	// be older than what was shipped: the restarted job replays the rest
	// from the execution's own log. Not with the final update: the job's
	// completion, journaled with the whole output, supersedes it.
	var kept *output.Kept
	if a.deps.Keeper != nil && !final && keepDue(snap.Stats.Held(), st.keptBytes) {
		k := st.out.Kept()
		kept = &k
	}
	ids := st.executions()
	var fin messages.FinalizeOutput
	if final {
		fin = *st.final
	}
	engine, self, deps, log := a.engine, a.self, a.deps, a.log
	jobID := st.jobID
	deps.Tasks.Or().Go(5*time.Minute, "execution update", func(ctx context.Context) error {
		if kept != nil {
			if err := deps.Keeper.SaveOutput(jobID, *kept); err != nil {
				log.Warn("could not keep the job's output; a restart replays it whole", "err", err)
			} else {
				st.keptSaved(snap.Stats.Held())
			}
		}
		var err error
		for i, id := range ids {
			u := snapshotUpdate(snap)
			if final {
				u = finalUpdate(snap, fin, i, masker)
			}
			if e := deps.Updater.UpdateExecution(ctx, id, u); e != nil && err == nil {
				err = e
			}
		}
		return err
	}, func(err error) {
		st.recordShipped(snap, final, err, deps.Clock.Now(), deps.Observer, log)
		if final {
			// Delivered or not, the job goes on to its one /complete.
			kit.Send(engine, fin.ReplyTo, messages.OutputFinalized{})
			return
		}
		kit.Send(engine, self, shipped{})
	})
}

// keptSaved records that the output, held bytes long, was kept.
func (st *State) keptSaved(held int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.keptBytes = held
}

// keepSmall is the output size below which every snapshot's output is
// kept too: keeping it costs less than replaying it.
const keepSmall = 1 << 20

// keepDue says whether the output, now held bytes long, is kept again
// with this snapshot, last kept at kept bytes. Past keepSmall it is kept
// once it has doubled: keeping all of it at every snapshot would write
// the square of a large output to disk (50 MB printed at full speed is
// written hundreds of MB over). An older copy costs a restart only a
// longer replay from the execution's own log (see journal.SaveOutput).
func keepDue(held, kept int64) bool {
	return held < keepSmall || held >= 2*kept
}

func (st *State) recordShipped(snap output.Snapshot, final bool, err error, now time.Time, obs Observer, log *slog.Logger) {
	stats := snap.Stats
	st.mu.Lock()
	defer st.mu.Unlock()
	st.busy, st.shippedAt = false, now
	if final {
		st.finalDone = true
	}
	if err != nil {
		log.Warn("could not ship output", "final", final, "err", err)
		return
	}
	if obs != nil {
		obs.OutputShipped(stats.Lines-st.shipped.Lines, stats.Bytes()-st.shipped.Bytes(),
			stats.DroppedBytes-st.shipped.DroppedBytes)
		// Each snapshot holds all the output so far: only what it masks
		// beyond the last one is new. (Fewer, once the cap rolls old
		// output out of the tail: then nothing is counted.)
		if n := snap.Masked - st.masked; n > 0 {
			obs.OutputMasked(n)
		}
	}
	st.shipped, st.masked = stats, snap.Masked
	st.pendingSince = time.Time{}
}
