package kit

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/orchestrator/internal/testenv"
)

func TestSafelyTurnsPanicsIntoErrors(t *testing.T) {
	err := Safely("executor", func() error { panic("nil map write") })
	if err == nil || !strings.Contains(err.Error(), "executor panicked: nil map write") {
		t.Fatalf("got %v", err)
	}
	if err := Safely("x", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestTypeName(t *testing.T) {
	type local struct{}
	for _, tt := range []struct {
		msg  any
		want string
	}{{local{}, "local"}, {&local{}, "local"}, {nil, "nil"}, {3, "int"}} {
		if got := TypeName(tt.msg); got != tt.want {
			t.Errorf("TypeName(%T) = %q, want %q", tt.msg, got, tt.want)
		}
	}
}

func TestGoBoundsTheCallAndSurvivesPanics(t *testing.T) {
	tasks := NewTasks()
	defer tasks.Close()
	errs := make(chan error, 2)
	tasks.Go(time.Minute, "backend call", func(context.Context) error { panic("boom") }, func(err error) { errs <- err })
	tasks.Go(20*time.Millisecond, "slow call", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		func(err error) { errs <- err })
	for i := 0; i < 2; i++ {
		select {
		case err := <-errs:
			if err == nil || !(strings.Contains(err.Error(), "backend call panicked: boom") ||
				errors.Is(err, context.DeadlineExceeded)) {
				t.Fatalf("got %v", err)
			}
		case <-time.After(testenv.Patience):
			t.Fatal("done was not called")
		}
	}
}

// Calls counts a call of Go as ended only once its done has returned.
func TestCallsCountsACallUntilItsDoneReturned(t *testing.T) {
	tasks := NewTasks()
	defer tasks.Close()
	started0, _ := Calls()
	release, inDone := make(chan struct{}), make(chan struct{})
	tasks.Go(time.Minute, "call", func(context.Context) error { return nil }, func(error) {
		close(inDone)
		<-release
	})
	<-inDone
	if started, ended := Calls(); started != started0+1 || ended == started {
		t.Fatalf("during done: %d started, %d ended (before: %d started); want one more started, not ended",
			started, ended, started0)
	}
	close(release)
	testenv.Idle(t, Calls)
}

// Close cancels the calls still running and returns once they ended; Wait
// reports whether everything ended in time.
func TestTasksCloseCancelsAndWaits(t *testing.T) {
	tasks := NewTasks()
	started := make(chan struct{})
	var ended atomic.Bool
	tasks.Go(time.Hour, "long call", func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}, func(error) { ended.Store(true) })
	release := make(chan struct{})
	tasks.Start("long run", func() { <-release })
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if tasks.Wait(ctx) {
		t.Fatal("Wait reported idle with two tasks running")
	}
	close(release)
	tasks.Close()
	if !ended.Load() {
		t.Fatal("Close returned before the call's done ran")
	}
	if !tasks.Wait(context.Background()) {
		t.Fatal("Wait after Close: not idle")
	}
}

// A panic in a started task is contained: the process goes on and the
// group ends.
func TestTasksStartSurvivesPanics(t *testing.T) {
	tasks := NewTasks()
	tasks.Start("panicky", func() { panic("boom") })
	tasks.Close()
}

// Calls may start while Wait or Close waits, also right as the group runs
// idle: the wait covers them, and nothing panics (a sync.WaitGroup does:
// "WaitGroup is reused before previous Wait has returned", which ended the
// process when a shutdown waited for its calls while actors still started
// some).
func TestTasksStartedWhileWaiting(t *testing.T) {
	tasks := NewTasks()
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			tasks.Go(time.Minute, "blip", func(context.Context) error { return nil }, nil)
		}
	}()
	for range 1000 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		tasks.Wait(ctx)
		cancel()
	}
	close(stop)
	<-stopped
	tasks.Close()
	if !tasks.Wait(context.Background()) {
		t.Fatal("not idle after Close")
	}
}
