package poller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/messages"
)

// scripted answers polls from a queue and records each batch size and
// wait. With maxWait set it announces that it holds polls, and holds those
// that ask for a wait while it has no answer queued (see hold).
type scripted struct {
	mu      sync.Mutex
	batches []int
	waits   []time.Duration
	answers []answer
	orphans int
	longPoll
}

type answer struct {
	n   int
	err error
}

func (b *scripted) Poll(ctx context.Context, n int, wait time.Duration) (backend.Polled, error) {
	b.mu.Lock()
	b.batches = append(b.batches, n)
	b.waits = append(b.waits, wait)
	if len(b.answers) == 0 {
		return b.hold(ctx, n, wait) // unlocks b.mu
	}
	defer b.mu.Unlock()
	a := b.answers[0]
	b.answers = b.answers[1:]
	return backend.Polled{Jobs: someJobs(min(a.n, n)), MaxWait: b.maxWait}, a.err
}

func someJobs(n int) []backend.Job {
	jobs := make([]backend.Job, n)
	for i := range jobs {
		jobs[i].ID = "job"
	}
	return jobs
}

func (b *scripted) OrphanedJobs(context.Context) ([]backend.JobRow, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.orphans++
	return nil, nil
}

func (b *scripted) polls() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.batches...)
}

type harness struct {
	t       *testing.T
	engine  *actor.Engine
	poller  *actor.PID
	clock   *kit.FakeClock
	backend *scripted
	claimed chan int
	flushed chan struct{}
}

// flush is a message the poller ignores; kit's middleware reports it
// handled to the poller's observer, like every message.
type flush struct{}

// flushes tells when the actor it observes has handled a flush.
type flushes chan struct{}

func (f flushes) MessageHandled(_, msgType string, _, _ time.Duration) {
	if msgType == "flush" {
		f <- struct{}{}
	}
}

// flush returns once the poller has handled everything sent to it before:
// hollywood handles an actor's messages in the order they were sent.
func (h *harness) flush() {
	h.t.Helper()
	kit.Send(h.engine, h.poller, flush{})
	select {
	case <-h.flushed:
	case <-time.After(testenv.Patience):
		h.t.Fatal("the poller did not handle a flush")
	}
}

func start(t *testing.T, capacity int, answers ...answer) *harness {
	t.Helper()
	return startWith(t, &scripted{answers: answers},
		Settings{Capacity: capacity, PollInterval: time.Second, MaxBackoff: 8 * time.Second})
}

// startWith runs a poller with settings against b, on a fake clock.
func startWith(t *testing.T, b *scripted, settings Settings) *harness {
	t.Helper()
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, engine: engine, clock: kit.NewFakeClock(time.Unix(0, 0)),
		backend: b, claimed: make(chan int, 100), flushed: make(chan struct{}, 1)}
	b.clock = h.clock
	sup := engine.SpawnFunc(func(c *actor.Context) {
		if m, ok := kit.Message(c).(messages.JobsClaimed); ok {
			h.claimed <- len(m.Jobs)
		}
	}, "sup")
	deps := Deps{Backend: h.backend, Clock: h.clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: settings, Supervisor: sup}
	h.poller = engine.Spawn(New(NewState(settings.Capacity), deps), "poller", kit.SpawnOpts("poller", "p", flushes(h.flushed))...)
	t.Cleanup(func() {
		<-engine.Poison(h.poller).Done()
		testenv.Idle(t, kit.Calls) // a poll in flight ends too
	})
	// First (cleanups run last first): a held poll is cancelled, not
	// waited for.
	t.Cleanup(func() { kit.Send(engine, h.poller, messages.StopPolling{}) })
	return h
}

// expectPolls waits until the given batch sizes were polled, lets the
// poller settle (every poll's answer handled, and whatever poll that
// started answered and handled too), and checks that exactly those were
// polled: time moves only with the fake clock, so a poller that settled
// polls again only when told.
func (h *harness) expectPolls(want ...int) {
	h.t.Helper()
	testenv.Eventually(h.t, testenv.Patience, fmt.Sprintf("%d polls", len(want)), func() bool {
		return len(h.backend.polls()) >= len(want)
	})
	testenv.Settle(h.t, kit.Calls, h.flush)
	got := h.backend.polls()
	if len(got) != len(want) {
		h.t.Fatalf("polls %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			h.t.Fatalf("polls %v, want %v", got, want)
		}
	}
}

func TestPollsAgainAtOnceWhileJobsComeAndOnlyForFreeSlots(t *testing.T) {
	h := start(t, 3, answer{n: 2}, answer{n: 1})
	// Start-up: orphan check, then polls of 3 (got 2) and 1 (got 1): full.
	h.expectPolls(3, 1)
	if h.backend.orphans != 1 {
		t.Fatalf("orphan checks %d, want 1 at start-up", h.backend.orphans)
	}
	h.clock.Advance(time.Hour) // no free slot: time alone polls nothing
	h.expectPolls(3, 1)
	h.engine.Send(h.poller, messages.SlotsFreed{N: 2})
	h.expectPolls(3, 1, 2) // freed slots are claimed at once
}

func TestEmptyQueueWaitsThePollInterval(t *testing.T) {
	h := start(t, 2)
	h.expectPolls(2)
	h.clock.Advance(999 * time.Millisecond)
	h.expectPolls(2)
	h.clock.Advance(time.Millisecond)
	h.expectPolls(2, 2)
}

func TestFailuresBackOffExponentiallyUpToTheMax(t *testing.T) {
	down := errors.New("backend down")
	h := start(t, 1, answer{err: down}, answer{err: down}, answer{err: down}, answer{err: down})
	h.expectPolls(1)
	// Waits of 2s, 4s, 8s, then capped at 8s.
	for i, wait := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		h.clock.Advance(wait - time.Millisecond)
		h.expectPolls(ones(i + 1)...) // not yet
		h.clock.Advance(time.Millisecond)
		h.expectPolls(ones(i + 2)...)
	}
}

func ones(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1
	}
	return s
}
