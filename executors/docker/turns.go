package docker

import (
	"context"
	"sync"
)

// turns lets one Run of an execution at a time touch its container. A Run
// replaced by a resumed one (its job actor crashed or was stopped) may still
// be inside a Docker call — a start in flight above all. Without turns the
// resumed Run could find the container "created", remove it as never
// started and start a new one while Docker carries out the old start: the
// script would run twice.
type turns struct {
	mu   sync.Mutex
	busy map[string]chan struct{} // closed when the Run holding it returns
}

// take waits until no other Run holds execution id, then holds it until
// release is called. It fails only when ctx ends first.
func (t *turns) take(ctx context.Context, id string) (release func(), err error) {
	for {
		t.mu.Lock()
		if t.busy == nil {
			t.busy = map[string]chan struct{}{}
		}
		held, ok := t.busy[id]
		if !ok {
			done := make(chan struct{})
			t.busy[id] = done
			t.mu.Unlock()
			return func() {
				t.mu.Lock()
				delete(t.busy, id)
				t.mu.Unlock()
				close(done)
			}, nil
		}
		t.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
