package kit

import (
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
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
		if got := KindOf(id); got != want {
			t.Errorf("KindOf(%q) = %q, want %q", id, got, want)
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
		deadline := time.Now().Add(5 * time.Second)
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
