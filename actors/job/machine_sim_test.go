package job

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/journal"
)

// sim drives the lifecycle the way the actor and the world would: each
// effect gets its answer, later and in any order, while restarts of the
// actor, interruptions, cancels, give-ups, duplicate and stale answers are
// thrown in at random.
type sim struct {
	rng      *rand.Rand
	s        State
	now      time.Time
	pending  []any // answers not yet delivered
	sent     []any // answers delivered, for duplicates
	sync     []any // answers of effects the actor carries out at once
	attempt  int   // the attempt in flight, 0: none
	stopped  error // the cause the attempt in flight was stopped with
	faults   int
	complete int // /complete calls that the backend accepted
	finished int
	steps    int
}

func (x *sim) feed(t *testing.T, ev any) {
	t.Helper()
	queue := []any{ev}
	for len(queue) > 0 {
		ev, queue = queue[0], queue[1:]
		s, effects := m.next(x.s, ev, x.now)
		x.s = s
		for _, e := range effects {
			x.do(e)
		}
		// As the actor does: answers of sync effects come next, in order.
		queue, x.sync = append(queue, x.sync...), nil
	}
}

// do answers an effect, at once (sync) or later (pending).
func (x *sim) do(e effect) {
	switch e := e.(type) {
	case effPlan:
		x.answer(evPlanned{Servers: 1, Policy: &backend.RetryPolicy{MaxAttempts: 2}})
	case effFetchCredentials:
		x.later(evStepDone{Seq: x.s.StepSeq})
	case effRegister:
		x.later(evStepDone{Seq: x.s.StepSeq, Err: x.maybe(errDown, 0.05)})
	case effMarkRunning:
		x.later(evStepDone{Seq: x.s.StepSeq})
	case effAbandon:
		x.later(evStepDone{Seq: x.s.StepSeq})
	case effComplete:
		err := x.maybe(errDown, 0.2)
		if err == nil {
			x.complete++
		}
		x.later(evStepDone{Seq: x.s.StepSeq, Err: err})
	case effJournal:
		x.answer(evJournaled{Stage: e.Stage, Err: x.maybe(errors.New("disk full"), 0.02)})
	case effStartAttempt:
		x.attempt, x.stopped = e.N, nil
		if e.Cancel != nil {
			x.stopped = cancelCause(e.Cancel)
		}
		x.later(evLaunched{})
		x.later(x.attemptEnd())
	case effStopAttempt:
		x.stopped = e.Cause
	case effInterrupted:
		if x.rng.Float64() < 0.3 {
			x.later(evGiveUp{Reason: "restart budget spent"})
		} else {
			x.later(evResume{})
		}
	case effArmResume:
		x.now = x.now.Add(e.After)
		x.later(evAdvance{})
	case effFinalizeOutput:
		x.later(evFinalized{})
	case effResetOutput:
		x.later(evOutputReset{})
	case effNewExecution:
		x.answer(evNewExecution{})
	case effCheckCancelLater:
		x.later(evCancelChecked{Cancelled: x.rng.Float64() < 0.05})
	case effFinished:
		x.finished++
	}
}

// attemptEnd is how the attempt in flight ends: by its stop cause if it
// was stopped when it ends, else by chance.
func (x *sim) attemptEnd() any {
	n := x.attempt
	switch r := x.rng.Float64(); {
	case r < 0.15:
		return evAttemptEnded{N: n, Err: errDropped}
	case r < 0.25:
		return evAttemptEnded{N: n, Err: executors.ErrDetached}
	case r < 0.5:
		return evAttemptEnded{N: n, Result: exitedOne}
	}
	return evAttemptEnded{N: n, Result: exitedOK}
}

func (x *sim) maybe(err error, p float64) error {
	if x.rng.Float64() < p {
		return err
	}
	return nil
}

func (x *sim) later(ev any)  { x.pending = append(x.pending, ev) }
func (x *sim) answer(ev any) { x.sync = append(x.sync, ev) }

// deliver takes one pending answer at random, or throws in a fault.
func (x *sim) deliver(t *testing.T) {
	if x.faults < 6 && x.rng.Float64() < 0.08 {
		x.faults++
		switch x.rng.IntN(4) {
		case 0:
			x.feed(t, evBegin{}) // the actor was replaced
		case 1:
			x.feed(t, evCancel{Reason: "by a user"})
		case 2:
			x.feed(t, evGiveUp{Reason: "restart budget spent"})
		case 3:
			if len(x.sent) > 0 { // an answer resent by a waiter
				x.feed(t, x.sent[x.rng.IntN(len(x.sent))])
			}
		}
		return
	}
	i := x.rng.IntN(len(x.pending))
	ev := x.pending[i]
	x.pending = append(x.pending[:i], x.pending[i+1:]...)
	if end, ok := ev.(evAttemptEnded); ok && x.stopped != nil && end.N == x.attempt {
		// A stopped attempt ends by its cause.
		ev = evAttemptEnded{N: end.N, Result: executors.Result{Cancelled: true}, Err: nil}
		if errors.Is(x.stopped, errGivenUp) {
			ev = evAttemptEnded{N: end.N, Err: x.stopped}
		}
	}
	x.sent = append(x.sent, ev)
	x.feed(t, ev)
}

// TestLifecycleCompletesExactlyOnce: whatever happens, and in whatever
// order answers come, a job reaches done once, with at most one accepted
// /complete, and exactly one when no /complete failed.
func TestLifecycleCompletesExactlyOnce(t *testing.T) {
	for seed := range uint64(3000) {
		x := &sim{rng: rand.New(rand.NewPCG(seed, 7)), s: State{Tries: 1}, now: t0}
		if seed%5 == 0 { // restored from the journal, running
			x.s = State{Tries: 1, Resumed: true, Attempts: 1, Journaled: journal.Running, StartedAt: t0}
		}
		x.feed(t, evBegin{})
		for len(x.pending) > 0 && x.steps < 10_000 {
			x.steps++
			x.deliver(t)
		}
		s := x.s
		switch {
		case s.Phase != phaseDone:
			t.Fatalf("seed %d: stuck in %s with nothing pending (step %s, executing %v, interrupted %v)",
				seed, s.Phase, s.Step, s.Executing, s.Interrupted)
		case x.complete > 1:
			t.Fatalf("seed %d: %d completions accepted", seed, x.complete)
		case x.complete == 1 != s.Completed || s.Completed == s.CompleteFailed:
			t.Fatalf("seed %d: %d accepted, completed %v, complete failed %v", seed, x.complete, s.Completed, s.CompleteFailed)
		case x.finished < 1:
			t.Fatalf("seed %d: the supervisor was never told", seed)
		case s.Tries > 2:
			t.Fatalf("seed %d: %d tries, the policy allows 2", seed, s.Tries)
		}
	}
}
