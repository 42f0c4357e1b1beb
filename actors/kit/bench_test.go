package kit

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
)

type tick struct{}

// sink counts the ticks it handles.
type sink struct{ n atomic.Int64 }

func (s *sink) Receive(c *actor.Context) {
	if _, ok := Message(c).(tick); ok {
		s.n.Add(1)
	}
}

type discard struct{}

func (discard) MessageHandled(string, string, time.Duration, time.Duration) {}

// BenchmarkSendAndHandle is the cost of one message from send to handled:
// hollywood's own engine.Send to an actor without middleware, against
// kit.Send to an actor with kit's middleware (stamp, mailbox depth,
// observer). Actors get ids shaped like the daemon's job actors
// (supervisor/rootN/job/job_...). The parallel cases send from every P to
// a job actor of its own, where a lock shared by all would show.
func BenchmarkSendAndHandle(b *testing.B) {
	cases := []struct {
		name string
		opts func(id string) []actor.OptFunc
		send func(e *actor.Engine, pid *actor.PID)
	}{
		{"engine.Send",
			func(id string) []actor.OptFunc { return []actor.OptFunc{actor.WithID(id)} },
			func(e *actor.Engine, pid *actor.PID) { e.Send(pid, tick{}) }},
		{"kit.Send+Middleware",
			func(id string) []actor.OptFunc { return SpawnOpts("job", id, discard{}) },
			func(e *actor.Engine, pid *actor.PID) { Send(e, pid, tick{}) }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			e := newBenchEngine(b)
			s := &sink{}
			pid := spawnJobActor(e, "0", s, c.opts)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c.send(e, pid)
			}
			awaitHandled(s, int64(b.N))
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			e := newBenchEngine(b)
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				s := &sink{}
				pid := spawnJobActor(e, strconv.FormatInt(next.Add(1), 10), s, c.opts)
				sent := int64(0)
				for pb.Next() {
					c.send(e, pid)
					sent++
				}
				awaitHandled(s, sent)
			})
		})
	}
}

func newBenchEngine(b *testing.B) *actor.Engine {
	b.Helper()
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// spawnJobActor spawns s as the child "job/job_Dx2T4uYld8z0" of a root
// "supervisor/root<n>", as the daemon's supervisor does.
func spawnJobActor(e *actor.Engine, n string, s *sink, opts func(id string) []actor.OptFunc) *actor.PID {
	var once sync.Once
	child := make(chan *actor.PID, 1)
	e.SpawnFunc(func(c *actor.Context) {
		if _, ok := c.Message().(actor.Started); ok {
			once.Do(func() { child <- c.SpawnChild(func() actor.Receiver { return s }, "job", opts("job_Dx2T4uYld8z0")...) })
		}
	}, "supervisor", actor.WithID("root"+n))
	return <-child
}

func awaitHandled(s *sink, n int64) {
	for s.n.Load() < n {
		time.Sleep(10 * time.Microsecond)
	}
}
