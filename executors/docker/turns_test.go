package docker

import (
	"context"
	"errors"
	"testing"
)

// A second Run of an execution waits for the first to return; other
// executions do not wait; a Run whose context ends while waiting gives up.
func TestTurns(t *testing.T) {
	var tr turns
	release, err := tr.take(context.Background(), "exec-1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tr.take(context.Background(), "exec-2")
	if err != nil {
		t.Fatal(err)
	}
	other()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.take(ctx, "exec-1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled wait: %v", err)
	}

	got := make(chan struct{})
	go func() {
		r, err := tr.take(context.Background(), "exec-1")
		if err == nil {
			r()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("the second Run did not wait for the first")
	default:
	}
	release()
	<-got
}
