package poller

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/messages"
)

// longPoll is the holding side of scripted: a backend that announces
// maxWait (0: it answers at once, like the real one) and holds a poll
// that asks for a wait, while no answer is queued, until the fake clock
// passes the wait, a job arrives (arrive) or the poll is cancelled.
type longPoll struct {
	maxWait time.Duration
	noHold  bool // announce maxWait, but answer at once all the same
	clock   *kit.FakeClock
	parked  []*parkedPoll
}

type parkedPoll struct {
	passed chan struct{} // the wait passed
	jobs   chan int      // jobs arrived
}

// hold answers a poll that found no answer queued. Called with b.mu
// held; it unlocks it.
func (b *scripted) hold(ctx context.Context, n int, wait time.Duration) (backend.Polled, error) {
	maxWait := b.maxWait
	if wait <= 0 || maxWait <= 0 || b.noHold {
		b.mu.Unlock()
		return backend.Polled{MaxWait: maxWait}, nil
	}
	p := &parkedPoll{passed: make(chan struct{}), jobs: make(chan int, 1)}
	b.parked = append(b.parked, p)
	// The callback runs in Advance, which the test calls only once the
	// poll is parked: it unparks synchronously, so that a test that saw
	// one poll parked after an Advance sees the next one.
	t := b.clock.AfterFunc(min(wait, maxWait), func() {
		if b.unpark(p) {
			close(p.passed)
		}
	})
	b.mu.Unlock()
	select {
	case <-p.passed:
		return backend.Polled{MaxWait: maxWait}, nil
	case k := <-p.jobs:
		t.Stop()
		return backend.Polled{Jobs: someJobs(min(k, n)), MaxWait: maxWait}, nil
	case <-ctx.Done():
		t.Stop()
		b.unpark(p)
		return backend.Polled{}, ctx.Err()
	}
}

func (b *scripted) unpark(p *parkedPoll) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, q := range b.parked {
		if q == p {
			b.parked = append(b.parked[:i], b.parked[i+1:]...)
			return true
		}
	}
	return false
}

// arrive answers the held poll with n jobs, as a backend does when jobs
// are queued while it holds a poll.
func (b *scripted) arrive(n int) {
	b.mu.Lock()
	p := b.parked[0]
	b.parked = b.parked[1:]
	b.mu.Unlock()
	p.jobs <- n
}

func (b *scripted) parkedPolls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.parked)
}

func (b *scripted) pollWaits() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Duration(nil), b.waits...)
}

func (b *scripted) orphanChecks() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.orphans
}

// heldPoll waits until a poll is held: the poller is idle until the clock
// moves or a job arrives.
func (h *harness) heldPoll() {
	h.t.Helper()
	testenv.Eventually(h.t, testenv.Patience, "a held poll", func() bool { return h.backend.parkedPolls() == 1 })
}

// defaults are the poller's settings as the daemon derives them from the
// default configuration.
func defaults(capacity int) Settings {
	c := config.Default()
	return Settings{Capacity: capacity, PollInterval: c.Jobs.PollInterval, MaxBackoff: c.Jobs.PollMaxBackoff,
		OrphanInterval: c.Jobs.OrphanCheckInterval, LongPollWait: backend.LongPollWait(c.API.RequestTimeout)}
}

func holding() *scripted { return &scripted{longPoll: longPoll{maxWait: 30 * time.Second}} }

func TestLongPollClaimsAJobTheMomentItComes(t *testing.T) {
	b := holding()
	h := startWith(t, b, defaults(2))
	h.heldPoll()
	// The first answer said that the backend holds polls; the next poll
	// asked it to.
	if got, want := fmt.Sprint(b.pollWaits()), fmt.Sprint([]time.Duration{0, 25 * time.Second}); got != want {
		t.Fatalf("waits %s, want %s", got, want)
	}
	b.arrive(1)
	select {
	case n := <-h.claimed:
		if n != 1 {
			t.Fatalf("claimed %d jobs, want 1", n)
		}
	case <-time.After(testenv.Patience):
		t.Fatal("the job that came while the poll was held was not claimed")
	}
	h.heldPoll() // at once, for the slot left
	if got := h.backend.polls(); fmt.Sprint(got) != "[2 2 1]" {
		t.Fatalf("polls %v, want [2 2 1]", got)
	}
	if !h.clock.Now().Equal(time.Unix(0, 0)) {
		t.Fatal("the clock moved") // no interval was waited for: none passed
	}
}

// Idle, against a backend that holds polls, with the default settings:
// at most one poll per 20s (the brief's budget), while the orphan check
// still runs about every minute. Time is the fake clock's; each step
// waits until the poller holds a poll again.
func TestIdleLongPollingPollsAtMostOncePer20s(t *testing.T) {
	b := holding()
	h := startWith(t, b, defaults(10))
	h.heldPoll()
	const span = 10 * time.Minute
	for elapsed := time.Duration(0); elapsed < span; elapsed += time.Second {
		h.clock.Advance(time.Second)
		h.heldPoll()
	}
	polls, orphans := len(h.backend.polls()), b.orphanChecks()
	t.Logf("%v idle: %d polls, %d orphan checks", span, polls, orphans)
	if budget := int(span / (20 * time.Second)); polls > budget {
		t.Fatalf("%d polls in %v, want at most %d (one per 20s)", polls, span, budget)
	}
	// Held polls delay an orphan check by at most half its interval.
	if least := int(span / (90 * time.Second)); orphans < least {
		t.Fatalf("%d orphan checks in %v, want at least %d", orphans, span, least)
	}
}

// A backend that does not say it holds polls (the real one) is polled by
// interval, as before, whatever the poller could ask.
func TestWithoutTheHeaderThePollerPollsByInterval(t *testing.T) {
	b := &scripted{}
	h := startWith(t, b, defaults(2))
	h.expectPolls(2)
	h.clock.Advance(2*time.Second - time.Millisecond)
	h.expectPolls(2)
	h.clock.Advance(time.Millisecond)
	h.expectPolls(2, 2)
	h.clock.Advance(2 * time.Second)
	h.expectPolls(2, 2, 2)
	for _, w := range b.pollWaits() {
		if w != 0 {
			t.Fatalf("waits %v: a poll asked a backend that does not hold polls to hold it", b.pollWaits())
		}
	}
}

// A backend that announces held polls but answers at once (released
// while shutting down, or broken) does not make the poller spin.
func TestHeldPollAnsweredAtOnceFallsBackToTheInterval(t *testing.T) {
	b := holding()
	b.noHold = true
	h := startWith(t, b, defaults(1))
	h.expectPolls(1, 1) // learnt that polls are held; asked for it; answered at once
	h.clock.Advance(2*time.Second - time.Millisecond)
	h.expectPolls(1, 1)
	h.clock.Advance(time.Millisecond)
	h.expectPolls(1, 1, 1)
}

// Draining does not wait for a held poll: StopPolling cancels it, and no
// poll follows.
func TestStopPollingCancelsAHeldPoll(t *testing.T) {
	b := holding()
	h := startWith(t, b, defaults(1))
	h.heldPoll()
	kit.Send(h.engine, h.poller, messages.StopPolling{})
	testenv.Idle(t, kit.Calls) // the held poll ended, though the clock did not move
	if b.parkedPolls() != 0 {
		t.Fatal("the poll is still held")
	}
	h.clock.Advance(time.Hour)
	h.expectPolls(1, 1)
}
