package kit

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/internal/testenv"
)

type blockOn struct{ release chan struct{} }

// gate blocks on its first blockOn message, so that later messages queue.
type gate struct{}

func (gate) Receive(c *actor.Context) {
	if m, ok := Message(c).(blockOn); ok {
		<-m.release
	}
}

func TestKindOf(t *testing.T) {
	tests := map[string]string{
		"supervisor/root":              "supervisor",
		"supervisor/root/job/job_1":    "job",
		"supervisor/root/poller/main":  "poller",
		"lonely":                       "lonely",
		"supervisor/root/log/job_xyz9": "log",
	}
	for id, want := range tests {
		if got := kindOf(id); got != want {
			t.Errorf("kindOf(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestMailboxDepth(t *testing.T) {
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	pid := e.Spawn(func() actor.Receiver { return gate{} }, "depthtest", SpawnOpts("depthtest", "one", nil)...)
	depth := func() int64 { return MailboxDepths()["depthtest"] }
	waitDepth := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(testenv.Patience)
		for depth() != want {
			if time.Now().After(deadline) {
				t.Fatalf("mailbox depth %d, want %d", depth(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}

	release := make(chan struct{})
	Send(e, pid, blockOn{release: release})
	waitDepth(0) // being handled is not waiting
	for range 5 {
		Send(e, pid, "queued")
	}
	waitDepth(5)
	close(release)
	waitDepth(0)

	// Messages queued behind a Stop are discarded by hollywood; they
	// must not stay counted.
	release = make(chan struct{})
	Send(e, pid, blockOn{release: release})
	waitDepth(0)
	stopped := e.Stop(pid)
	for range 3 {
		Send(e, pid, "queued")
	}
	waitDepth(3)
	close(release)
	<-stopped.Done()
	waitDepth(0)

	// A dead actor's messages go to dead letters, not a mailbox.
	Send(e, pid, "nobody home")
	if d := depth(); d != 0 {
		t.Fatalf("message to a stopped actor counted: depth %d", d)
	}
}

// Send and the middleware run for every message: once an actor has its
// mailbox, counting a message in and out allocates nothing.
func TestMailboxBookkeepingDoesNotAllocate(t *testing.T) {
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	pid := e.Spawn(func() actor.Receiver { return gate{} }, "allocs",
		SpawnOpts("allocs", "job_Dx2T4uYld8z0-with-a-long-id", nil)...)
	t.Cleanup(func() { <-e.Poison(pid).Done() })
	depths.sent(e, pid) // the first message opens the mailbox
	depths.dequeued(pid.ID)
	if n := testing.AllocsPerRun(100, func() {
		depths.sent(e, pid)
		depths.dequeued(pid.ID)
		_ = kindOf("supervisor/root/job/job_Dx2T4uYld8z0")
	}); n != 0 {
		t.Errorf("%v allocations per message", n)
	}
}

// Senders racing with an actor's stop and its respawn under the same id
// (what the supervisor does after a kill) leave nothing counted once every
// message was handled or discarded.
func TestMailboxDepthUnderConcurrentStops(t *testing.T) {
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	depth := func() int64 { return MailboxDepths()["racetest"] }
	for round := range 20 {
		pid := e.Spawn(func() actor.Receiver { return gate{} }, "racetest", SpawnOpts("racetest", "one", nil)...)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 200 {
					Send(e, pid, strconv.Itoa(round*g+i))
				}
			})
		}
		<-e.Stop(pid).Done()
		wg.Wait()
		if d := depth(); d != 0 {
			t.Fatalf("round %d: depth %d after the actor stopped", round, d)
		}
	}
}
