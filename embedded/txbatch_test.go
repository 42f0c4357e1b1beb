package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Transactions queued behind a running one commit together in one group;
// one that fails undoes only its own changes, and its caller alone hears
// of it.
func TestQueuedTransactionsShareACommit(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.db.Exec(`CREATE TABLE t (k TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	insert := func(k string) func(context.Context, *sql.Tx) error {
		return func(_ context.Context, tx *sql.Tx) error {
			_, err := tx.Exec(`INSERT INTO t (k) VALUES (?)`, k)
			return err
		}
	}
	hold, held := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.inTx(t.Context(), func(ctx context.Context, tx *sql.Tx) error {
			close(held)
			<-hold
			return insert("first")(ctx, tx)
		}); err != nil {
			t.Error(err)
		}
	})
	<-held
	failed := errors.New("refused")
	errs := make([]error, 50)
	for i := range errs {
		wg.Go(func() {
			f := insert(fmt.Sprint(i))
			if i == 7 {
				f = func(ctx context.Context, tx *sql.Tx) error {
					if err := insert("7")(ctx, tx); err != nil {
						return err
					}
					return failed // after its insert: undone
				}
			}
			errs[i] = s.inTx(t.Context(), f)
		})
	}
	deadline := time.Now().Add(time.Minute)
	for {
		s.txq.mu.Lock()
		n := len(s.txq.waiting)
		s.txq.mu.Unlock()
		if n == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 50 transactions queued after a minute", n)
		}
		time.Sleep(time.Millisecond)
	}
	close(hold)
	wg.Wait()
	for i, err := range errs {
		if want := error(nil); i == 7 {
			if !errors.Is(err, failed) {
				t.Errorf("transaction 7: %v, want %v", err, failed)
			}
		} else if err != want {
			t.Errorf("transaction %d: %v", i, err)
		}
	}
	var n int
	var seven bool
	if err := s.db.QueryRowContext(context.Background(), `SELECT COUNT(*), COALESCE(SUM(k = '7'), 0) FROM t`).Scan(&n, &seven); err != nil {
		t.Fatal(err)
	}
	if n != 50 || seven {
		t.Errorf("%d rows (7 among them: %v), want 50 without 7", n, seven)
	}
	if g := s.txq.groups; g != 2 {
		t.Errorf("%d groups for 51 transactions, want 2", g)
	}
}

// A caller's transaction that panics fails its group, not the store: the
// panic is its caller's error, and the next transaction runs. A caller's
// context ending while its transaction runs does not reach the
// statements, which would interrupt the whole group's transaction.
func TestTransactionPanicAndCancellation(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.db.Exec(`CREATE TABLE t (k TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	err = s.inTx(t.Context(), func(context.Context, *sql.Tx) error { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("a panicking transaction: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	err = s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("the statements' context was cancelled with the caller's: %w", ctx.Err())
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO t (k) VALUES ('after')`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows (%v), want 1", n, err)
	}
}
