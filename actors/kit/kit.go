// Package kit is the plumbing every actor here shares: messages stamped at
// send (so time spent in a mailbox can be measured), a middleware that
// observes handling and turns messages.Crash into a panic, spawn options
// that keep hollywood v1.0.5's broken MaxRestarts out of reach, and an
// injectable clock.
package kit

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/messages"
)

// envelope carries a message and when it was sent.
type envelope struct {
	msg    any
	sentAt time.Time
}

// Send delivers msg to pid, stamped with the send time. Safe from any
// goroutine (it only needs the engine, never an actor.Context).
func Send(e *actor.Engine, pid *actor.PID, msg any) {
	depths.sent(e, pid)
	e.Send(pid, envelope{msg: msg, sentAt: time.Now()})
}

// Message is the message being handled, unwrapped from its envelope.
// Actors call it instead of c.Message().
func Message(c *actor.Context) any {
	return unwrap(c.Message())
}

func unwrap(m any) any {
	if env, ok := m.(envelope); ok {
		return env.msg
	}
	return m
}

// Observer receives one call per handled message. Implementations must be
// cheap and safe for concurrent use.
type Observer interface {
	MessageHandled(kind, msgType string, handling, queued time.Duration)
}

// CrashError is the panic value of an injected crash.
type CrashError struct{ Reason string }

func (e CrashError) Error() string { return "injected crash: " + e.Reason }

// Middleware measures each message of an actor of the given kind and
// panics on messages.Crash, so that every actor can be crashed on purpose
// through the same path a real bug takes.
func Middleware(kind string, obs Observer) actor.MiddlewareFunc {
	return func(next actor.ReceiveFunc) actor.ReceiveFunc {
		return func(c *actor.Context) {
			raw := c.Message()
			start := time.Now()
			var queued time.Duration
			if env, ok := raw.(envelope); ok {
				queued = start.Sub(env.sentAt)
				// Counted out before handling: a panicking message is
				// dropped, never handled again.
				depths.dequeued(c.PID().ID)
			}
			msg := unwrap(raw)
			if _, ok := msg.(actor.Stopped); ok {
				// Stopped reaches the middleware only on a real stop (a
				// crash bypasses it); what is still queued is discarded.
				depths.stopped(c.PID().ID)
			}
			if crash, ok := msg.(messages.Crash); ok {
				panic(CrashError{Reason: crash.Reason})
			}
			next(c)
			if obs != nil {
				obs.MessageHandled(kind, TypeName(msg), time.Since(start), queued)
			}
		}
	}
}

// TypeName is a message's type without its package path ("JobsClaimed",
// "actor.Started"), bounded in variety so it can label a metric.
func TypeName(msg any) string {
	t := reflect.TypeOf(msg)
	if t == nil {
		return "nil"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.PkgPath() == "github.com/anthdm/hollywood/actor" {
		return "actor." + t.Name()
	}
	if t.Name() == "" {
		return t.Kind().String()
	}
	return t.Name()
}

// RestartDelay is how long hollywood waits before it restarts a crashed
// actor. Backoff that depends on the actor's history is applied by the
// actor itself after it restarts.
const RestartDelay = 50 * time.Millisecond

// inboxSize is every actor's initial mailbox capacity. hollywood's
// default (1024 slots, ≈24 KB) made two thirds of what a job in flight
// costs (a JobActor and a LogActor each); ours hold a few messages at a
// time, and a full mailbox doubles (it is unbounded), so nothing waits.
const inboxSize = 32

// SpawnOpts are the options for every actor: an id, our middleware, a
// small initial mailbox, and a restart limit so high it is never reached.
// hollywood v1.0.5 exits the whole process when MaxRestarts is exhausted
// (a nil cancel func), so the supervisor enforces restart budgets itself.
func SpawnOpts(kind, id string, obs Observer) []actor.OptFunc {
	return []actor.OptFunc{
		actor.WithID(id),
		actor.WithInboxSize(inboxSize),
		actor.WithMaxRestarts(math.MaxInt32),
		actor.WithRestartDelay(RestartDelay),
		actor.WithMiddleware(Middleware(kind, obs)),
	}
}

// PanicReason renders a panic value as text for logs and job errors.
func PanicReason(v any) string {
	switch r := v.(type) {
	case error:
		return r.Error()
	case string:
		return r
	}
	return fmt.Sprint(v)
}

// Tasks owns the goroutines actors start for blocking calls (the backend,
// an executor): each runs off the actor's goroutine, bounded by its
// timeout and by the group's context, with a panic turned into an error
// (such goroutines are outside any actor's recovery: a panic there would
// end the process). Whoever creates a Tasks stops it with Close, which
// cancels what is still running and waits for it.
//
// Calls may start while Wait or Close waits (actors still stopping start
// some): a sync.WaitGroup forbids that once it ran idle under a waiter
// (it panics, and the process with it), so the group counts its calls
// itself.
type Tasks struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	running int
	idle    chan struct{} // closed while running is 0
}

// NewTasks returns an empty group whose calls run until Close.
func NewTasks() *Tasks {
	ctx, cancel := context.WithCancel(context.Background())
	idle := make(chan struct{})
	close(idle)
	return &Tasks{ctx: ctx, cancel: cancel, idle: idle}
}

func (t *Tasks) add() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running == 0 {
		t.idle = make(chan struct{})
	}
	t.running++
}

func (t *Tasks) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running--; t.running == 0 {
		close(t.idle)
	}
}

// Go runs call in the group, then hands its error to done (which may be
// nil). done runs on the call's goroutine.
func (t *Tasks) Go(timeout time.Duration, what string, call func(ctx context.Context) error, done func(error)) {
	callsStarted.Add(1)
	t.add()
	go func() {
		defer t.done()
		defer callsEnded.Add(1)
		ctx, cancel := context.WithTimeout(t.ctx, timeout)
		err := Safely(what, func() error { return call(ctx) })
		cancel()
		if done != nil {
			done(err)
		}
	}()
}

// Start runs fn in the group with no deadline of its own: for work whose
// end the caller waits for by other means (an executor run, which its own
// context stops). A panic in fn ends fn, not the process; fn reports its
// own errors. Such goroutines are not counted by Calls: they may run as long as a job.
func (t *Tasks) Start(what string, fn func()) {
	t.add()
	go func() {
		defer t.done()
		_ = Safely(what, func() error { fn(); return nil })
	}()
}

// Wait waits until every call has ended, or ctx is done; it reports
// whether they all ended. Calls started meanwhile are waited for too.
func (t *Tasks) Wait(ctx context.Context) bool {
	for {
		t.mu.Lock()
		idle, running := t.idle, t.running
		t.mu.Unlock()
		if running == 0 {
			return true
		}
		select {
		case <-idle: // look again: calls may have started since
		case <-ctx.Done():
			return false
		}
	}
}

// Close cancels the calls still running and waits for them to return.
func (t *Tasks) Close() {
	t.cancel()
	t.Wait(context.Background())
}

// Shared is the group of actors whose creator gave them none (tests that
// spawn one actor alone).
var Shared = NewTasks()

// Or returns t, or Shared when t is nil.
func (t *Tasks) Or() *Tasks {
	if t == nil {
		return Shared
	}
	return t
}

// callsStarted and callsEnded count the calls every Tasks started and those that
// ended, done included.
var callsStarted, callsEnded atomic.Int64

// Calls reports how many calls any Tasks has started and how many have ended
// (their done included), process-wide. When the two are equal, no call is
// in flight and every message a done sent has been sent: tests use it to
// know that nothing an actor started in the background can still act.
func Calls() (started, ended int64) {
	ended = callsEnded.Load() // first: then started >= ended, and equal means idle
	return callsStarted.Load(), ended
}

// Safely runs f and turns a panic into an error, for the goroutines actors
// start (executor runs, backend calls): a panic there is outside any
// actor's recovery and would end the whole process.
func Safely(what string, f func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%s panicked: %s", what, PanicReason(v))
		}
	}()
	return f()
}
