package testenv

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// Docker returns a client for the daemon named by DOCKER_HOST (or the
// default socket) after pinging it, and closes it when the test ends. It
// skips the test, or fails it in CI, when no daemon answers.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		Unavailable(t, "docker client: %v", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		_ = cli.Close()
		Unavailable(t, "docker daemon not reachable: %v", err)
		return nil
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// Starts counts container start events per value of a label, from the
// moment it is called until the test ends. It listens live because the
// engine keeps only its last 256 events: under the load of a full test
// run, asking for past events afterwards loses the ones that matter.
type Starts struct {
	mu     sync.Mutex
	counts map[string]int
}

// WatchStarts begins counting the starts of containers carrying label,
// keyed by the label's value.
func WatchStarts(t testing.TB, cli *client.Client, label string) *Starts {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Starts{counts: map[string]int{}}
	// Since replays what happened between now and the moment the engine
	// takes the subscription, so no start is missed in that gap.
	msgs, errs := cli.Events(ctx, events.ListOptions{Since: time.Now().Format(time.RFC3339Nano), Filters: filters.NewArgs(
		filters.Arg("type", "container"), filters.Arg("event", "start"), filters.Arg("label", label))})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case m := <-msgs:
				s.mu.Lock()
				s.counts[m.Actor.Attributes[label]]++
				s.mu.Unlock()
			case <-errs:
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// Count returns how many starts of containers labelled value were seen.
func (s *Starts) Count(value string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[value]
}
