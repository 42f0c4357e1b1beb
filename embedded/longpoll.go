package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/cronium/orchestrator/backend"
)

// Held requests: a queue poll with wait (see backend.HeaderLongPoll) is
// held until a job is claimable, and a job's output asked for with after
// and wait until it changes. They wake on the store's commits and, for
// jobs scheduled later, on a timer set to the earliest one's time: no
// request looks at the store on a clock of its own. A held request ends
// when its wait passes, its client goes away or ReleaseHeld is called;
// it runs on its handler's goroutine and leaves nothing behind.

// MaxWait caps the wait of a held request. The queue announces it in
// backend.HeaderLongPoll.
const MaxWait = time.Minute

var errBadWait = fmt.Errorf("invalid %s: want seconds, from 0 (at most %v are held)", backend.QueryWait, MaxWait)

// parseWait reads a wait parameter: seconds, a decimal number from 0 (""
// is 0: answer at once); more than MaxWait is cut to it.
func parseWait(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || !(secs >= 0) { // NaN too
		return 0, errBadWait
	}
	return time.Duration(min(secs, MaxWait.Seconds()) * float64(time.Second)), nil
}

// ReleaseHeld answers every held request at once, as if its wait had
// passed, and stops holding new ones; the Server serves on otherwise.
// Call it when the HTTP server shuts down (http.Server.RegisterOnShutdown):
// Shutdown waits for requests in flight, held ones included.
func (s *Server) ReleaseHeld() { s.releaseOnce.Do(func() { close(s.released) }) }

// broadcast wakes everyone waiting for the next change: next returns a
// channel that the following notify closes.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) next() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// holds says whether a request that asks for wait is held: not after
// ReleaseHeld.
func (s *Server) holds(wait time.Duration) bool {
	select {
	case <-s.released:
		return false
	default:
		return wait > 0
	}
}

// hold is one request being held.
type hold struct {
	s        *Server
	ctx      context.Context
	deadline *time.Timer
	due      *time.Timer // nil until a job scheduled later is waited for
}

func (s *Server) hold(ctx context.Context, wait time.Duration) *hold {
	s.holding.Add(1)
	return &hold{s: s, ctx: ctx, deadline: time.NewTimer(wait)}
}

func (h *hold) end() {
	h.deadline.Stop()
	if h.due != nil {
		h.due.Stop()
	}
	h.s.holding.Add(-1)
}

// sleep waits for changed, or for the time due (0: none). It reports
// whether to look again; false: answer now (the wait passed, the client
// went away, or held requests were released).
func (h *hold) sleep(changed <-chan struct{}, due time.Duration) bool {
	return h.sleepEither(changed, nil, due)
}

// sleepEither is sleep woken by either of two kinds of change.
func (h *hold) sleepEither(changed, also <-chan struct{}, due time.Duration) bool {
	var dueC <-chan time.Time
	if due > 0 {
		if h.due == nil {
			h.due = time.NewTimer(due)
		} else {
			h.due.Reset(due) // Go ≥ 1.23: no stale tick survives a Reset
		}
		dueC = h.due.C
	}
	select {
	case <-changed:
		return true
	case <-also:
		return true
	case <-dueC:
		return true
	case <-h.deadline.C:
	case <-h.ctx.Done():
	case <-h.s.released:
	}
	return false
}

// claimWaiting claims like the queue does; with a wait, it first waits
// for a claimable job (queued, unowned and due) up to wait. It claims only
// once a read saw such a job: a claim commits, and every commit wakes the
// other held polls.
func (s *Server) claimWaiting(ctx context.Context, orchID string, limit int, wait time.Duration) ([]jobRecord, error) {
	if !s.holds(wait) || limit <= 0 {
		return s.store.claim(ctx, orchID, limit, s.now())
	}
	h := s.hold(ctx, wait)
	defer h.end()
	for {
		changed := s.store.changes.next() // first: a commit made while we look wakes us
		now := s.now()
		earliest, ok, err := s.store.earliestQueued(ctx)
		if err != nil {
			return nil, err
		}
		var due time.Duration
		if ok {
			if earliest <= now.UnixMilli() {
				jobs, err := s.store.claim(ctx, orchID, limit, now)
				if err != nil || len(jobs) > 0 {
					return jobs, err
				}
				continue // another poll claimed them first
			}
			due = time.Duration(earliest-now.UnixMilli()) * time.Millisecond
		}
		if !h.sleep(changed, due) {
			return nil, nil
		}
	}
}

// earliestQueued is the earliest scheduledFor (Unix ms) of the jobs a
// claim could take now or later (queued and unowned); ok is false when
// there are none.
func (s *Store) earliestQueued(ctx context.Context) (ms int64, ok bool, err error) {
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MIN(scheduled_for) FROM jobs
		WHERE status = 'queued' AND orchestrator_id IS NULL`).Scan(&v); err != nil {
		return 0, false, fmt.Errorf("earliest queued job: %w", err)
	}
	return v.Int64, v.Valid, nil
}

// outputWaiting returns the job's output; with a wait, once its version
// differs from after (or it is final), or when the wait ends. after < 0
// answers at once.
func (s *Server) outputWaiting(ctx context.Context, id string, after int64, wait time.Duration) (OutputView, error) {
	if !s.holds(wait) || after < 0 {
		return s.output(ctx, id)
	}
	h := s.hold(ctx, wait)
	defer h.end()
	for {
		changed, lines := s.store.changes.next(), s.live.changes.next()
		o, err := s.output(ctx, id)
		if err != nil || o.Version != after || o.Final || !h.sleepEither(changed, lines, 0) {
			return o, err
		}
	}
}

// version is the job's latest event number: every change to the job or
// its executions logs an event, so a new version means something changed.
func (s *Store) version(ctx context.Context, jobID string) (int64, error) {
	var v int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events WHERE job_id = ?`,
		jobID).Scan(&v); err != nil {
		return 0, fmt.Errorf("job version: %w", err)
	}
	return v, nil
}

// parseAfter reads the after parameter of a job's output: a version from
// 0; absent: -1 (answer at once).
func parseAfter(v string) (int64, error) {
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("invalid after: want a version the output route returned")
	}
	return n, nil
}
