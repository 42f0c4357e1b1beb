package kit

import (
	"strings"
	"sync"

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
// The counts are per process, like the Go runtime's: a process runs one
// engine; tests that run several engines at once see their sum.
var depths = newMailboxes()

type mailboxes struct {
	mu     sync.Mutex
	byPID  map[string]int64
	byKind map[string]int64
}

func newMailboxes() *mailboxes {
	return &mailboxes{byPID: map[string]int64{}, byKind: map[string]int64{}}
}

// sent counts a message in, if its actor is alive. The registry is read
// under our lock, so an actor that stops afterwards takes the message
// out again in stopped.
func (m *mailboxes) sent(e *actor.Engine, pid *actor.PID) {
	if pid == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !registered(e, pid.ID) {
		return
	}
	m.byPID[pid.ID]++
	m.byKind[KindOf(pid.ID)]++
}

func (m *mailboxes) dequeued(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.byPID[id]
	if !ok {
		return
	}
	if n <= 1 {
		delete(m.byPID, id)
	} else {
		m.byPID[id] = n - 1
	}
	m.byKind[KindOf(id)]--
}

// stopped forgets what was still queued: hollywood drops it.
func (m *mailboxes) stopped(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n, ok := m.byPID[id]; ok {
		delete(m.byPID, id)
		m.byKind[KindOf(id)] -= n
	}
}

func (m *mailboxes) snapshot() map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int64, len(m.byKind))
	for k, n := range m.byKind {
		out[k] = n
	}
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

// KindOf is the kind of actor a PID id names: hollywood ids are
// parent/kind/id ("supervisor/root/job/job_1" is a job actor) and the root
// is kind/id ("supervisor/root").
func KindOf(id string) string {
	parts := strings.Split(id, "/")
	if len(parts) < 2 {
		return id
	}
	return parts[len(parts)-2]
}

// MailboxDepths returns the stamped messages waiting in mailboxes, by
// actor kind. Kinds that had messages once stay in the map (at 0).
func MailboxDepths() map[string]int64 { return depths.snapshot() }
