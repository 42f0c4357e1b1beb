package kit

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/anthdm/hollywood/actor"
)

// hollywood v1.0.5 does not expose an inbox's length, so mailbox depth is
// counted here: a stamped message is counted in when Send delivers it to a
// live actor, and out when the middleware starts handling it or when its
// actor stops with it still queued (hollywood discards those). Messages
// sent to an actor that is not registered go to dead letters and are never
// counted in. Unstamped messages (engine.Send, Request, lifecycle events)
// are not counted at all.
//
// Send and the middleware run for every message, from every goroutine, so
// nothing here takes a process-wide lock or allocates once an actor has its
// mailbox: each actor's count has its own lock (shared only by its senders
// and itself), and the per-kind totals are atomics.
//
// The counts are per process, like the Go runtime's: a process runs one
// engine; tests that run several engines at once see their sum.
var depths mailboxes

type mailboxes struct {
	byPID  sync.Map // PID id → *mailbox
	byKind sync.Map // kind → *atomic.Int64
}

// mailbox is one actor's count of queued stamped messages.
type mailbox struct {
	mu sync.Mutex
	n  int64
	// gone: its actor stopped (or was never registered); the mailbox is
	// out of byPID and a later message to the same id starts a new one.
	gone bool
	kind *atomic.Int64
}

// sent counts a message in, if its actor is alive.
func (m *mailboxes) sent(e *actor.Engine, pid *actor.PID) {
	if pid == nil {
		return
	}
	if mb := m.open(e, pid.ID); mb != nil {
		mb.n++
		mb.kind.Add(1)
		mb.mu.Unlock()
	}
}

// open returns id's mailbox, locked; it creates it if the actor is
// registered, and returns nil if it is not. The registry is read with the
// new mailbox locked, so an actor that stops afterwards takes the message
// out again in stopped.
func (m *mailboxes) open(e *actor.Engine, id string) *mailbox {
	for {
		if v, ok := m.byPID.Load(id); ok {
			mb := v.(*mailbox)
			mb.mu.Lock()
			if !mb.gone {
				return mb
			}
			mb.mu.Unlock() // retired since the Load: look again
			continue
		}
		mb := &mailbox{kind: m.kindCounter(kindOf(id))}
		mb.mu.Lock()
		if _, loaded := m.byPID.LoadOrStore(id, mb); loaded {
			continue // another sender created it first
		}
		if registered(e, id) {
			return mb
		}
		m.retire(id, mb)
		mb.mu.Unlock()
		return nil
	}
}

// dequeued counts out a message the actor starts handling.
func (m *mailboxes) dequeued(id string) {
	m.locked(id, func(mb *mailbox) {
		if mb.n > 0 {
			mb.n--
			mb.kind.Add(-1)
		}
	})
}

// stopped forgets what was still queued: hollywood drops it.
func (m *mailboxes) stopped(id string) {
	m.locked(id, func(mb *mailbox) {
		mb.kind.Add(-mb.n)
		mb.n = 0
		m.retire(id, mb)
	})
}

// locked runs f on id's live mailbox, if it has one, under its lock.
func (m *mailboxes) locked(id string, f func(*mailbox)) {
	v, ok := m.byPID.Load(id)
	if !ok {
		return
	}
	mb := v.(*mailbox)
	mb.mu.Lock()
	if !mb.gone {
		f(mb)
	}
	mb.mu.Unlock()
}

// retire marks mb gone and removes it; mb is locked.
func (m *mailboxes) retire(id string, mb *mailbox) {
	mb.gone = true
	m.byPID.CompareAndDelete(id, mb)
}

func (m *mailboxes) kindCounter(kind string) *atomic.Int64 {
	if v, ok := m.byKind.Load(kind); ok {
		return v.(*atomic.Int64)
	}
	v, _ := m.byKind.LoadOrStore(kind, new(atomic.Int64))
	return v.(*atomic.Int64)
}

func (m *mailboxes) snapshot() map[string]int64 {
	out := map[string]int64{}
	m.byKind.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

func registered(e *actor.Engine, id string) bool {
	if e == nil {
		return false
	}
	i := strings.LastIndexByte(id, '/')
	if i < 0 {
		return false
	}
	return e.Registry.GetPID(id[:i], id[i+1:]) != nil
}

// kindOf is the kind of actor a PID id names, without allocating:
// hollywood ids are parent/kind/id ("supervisor/root/job/job_1" is a job
// actor) and the root is kind/id ("supervisor/root").
func kindOf(id string) string {
	i := strings.LastIndexByte(id, '/')
	if i < 0 {
		return id
	}
	p := id[:i]
	return p[strings.LastIndexByte(p, '/')+1:]
}

// MailboxDepths returns the stamped messages waiting in mailboxes, by
// actor kind. Kinds that had messages once stay in the map (at 0).
func MailboxDepths() map[string]int64 { return depths.snapshot() }
