package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Transactions are committed in groups: a caller that finds another's
// transaction running queues its own, and the next group runs them all in
// one SQLite transaction, each inside a savepoint so that one failing
// undoes only its own changes. A commit writes the WAL and its index
// whatever it changed: one per API call made the store, not the
// orchestrator, what bounded a busy pipeline.
//
// The caller that finds none running leads: it runs one group (its own
// call first in it), then hands the lead to the first caller still
// queued, so that no caller's own call waits behind an endless stream of
// others. No goroutine of the store's own.
type txQueue struct {
	mu      sync.Mutex
	waiting []*txWork
	running bool
	groups  int // run so far (tests)
}

type txWork struct {
	ctx  context.Context
	f    func(context.Context, *sql.Tx) error
	done chan error // buffered: the leader never waits on a caller
}

// errLead, sent on a queued caller's done, makes it the next leader.
var errLead = errors.New("embedded: lead the next group")

// maxGroup bounds a group's size.
const maxGroup = 256

// inTx runs f in a transaction (its own savepoint in a group's), committed
// when f returns nil; it returns once that commit is done or failed. f
// gets ctx without its cancellation: a statement interrupted by one
// caller's deadline would roll back the whole group's transaction. A
// caller whose ctx ended before its turn is not run.
func (s *Store) inTx(ctx context.Context, f func(context.Context, *sql.Tx) error) error {
	w := &txWork{ctx: ctx, f: f, done: make(chan error, 1)}
	q := &s.txq
	q.mu.Lock()
	q.waiting = append(q.waiting, w)
	lead := !q.running
	q.running = true
	q.mu.Unlock()
	for {
		if lead {
			s.lead()
		}
		if err := <-w.done; err != errLead {
			return err
		}
		lead = true
	}
}

// lead runs the next group, then hands the lead on or ends it.
func (s *Store) lead() {
	q := &s.txq
	q.mu.Lock()
	n := min(len(q.waiting), maxGroup)
	group := q.waiting[:n:n]
	q.waiting = q.waiting[n:]
	if len(q.waiting) == 0 {
		q.waiting = nil // not to keep the answered ones reachable
	}
	q.groups++
	q.mu.Unlock()
	s.runGroup(group)
	q.mu.Lock()
	if len(q.waiting) > 0 {
		q.waiting[0].done <- errLead
	} else {
		q.running = false
	}
	q.mu.Unlock()
}

// runGroup runs a group in one transaction and answers each of its
// callers.
func (s *Store) runGroup(group []*txWork) {
	// Not a caller's context: cancelling it would roll back the others'.
	ctx := context.Background()
	answer := func(ws []*txWork, err error) {
		for _, w := range ws {
			w.done <- err
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		answer(group, fmt.Errorf("begin: %w", err))
		return
	}
	var ok []*txWork
	for i, w := range group {
		err := w.ctx.Err()
		if err == nil {
			err = runSaved(ctx, tx, w)
		}
		var broken *brokenTx
		switch {
		case errors.As(err, &broken):
			_ = tx.Rollback()
			answer(ok, broken.err)
			w.done <- broken.err
			// The rest did not run; they fail with it rather than wait.
			answer(group[i+1:], broken.err)
			return
		case err != nil:
			w.done <- err
		default:
			ok = append(ok, w)
		}
	}
	if err := tx.Commit(); err != nil {
		answer(ok, fmt.Errorf("commit: %w", err))
		return
	}
	answer(ok, nil)
	if len(ok) > 0 {
		s.changes.notify()
	}
}

// brokenTx: a savepoint could not be set or undone, so the transaction
// holds changes of unknown callers: none of the group may commit.
type brokenTx struct{ err error }

func (b *brokenTx) Error() string { return b.err.Error() }
func (b *brokenTx) Unwrap() error { return b.err }

// runSaved runs one caller's f inside a savepoint of tx. A panic of f is
// its error, and breaks the transaction: the leader runs f for a caller
// and must go on answering the others.
func runSaved(ctx context.Context, tx *sql.Tx, w *txWork) (err error) {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT caller"); err != nil {
		return &brokenTx{fmt.Errorf("savepoint: %w", err)}
	}
	defer func() {
		if p := recover(); p != nil {
			err = &brokenTx{fmt.Errorf("embedded: a transaction panicked: %v", p)}
		}
	}()
	if err := w.f(context.WithoutCancel(w.ctx), tx); err != nil {
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO caller"); rerr != nil {
			return &brokenTx{fmt.Errorf("undo a failed call (%w): %w", err, rerr)}
		}
		if _, rerr := tx.ExecContext(ctx, "RELEASE caller"); rerr != nil {
			return &brokenTx{fmt.Errorf("undo a failed call (%w): %w", err, rerr)}
		}
		return err
	}
	if _, err := tx.ExecContext(ctx, "RELEASE caller"); err != nil {
		return &brokenTx{fmt.Errorf("release: %w", err)}
	}
	return nil
}
