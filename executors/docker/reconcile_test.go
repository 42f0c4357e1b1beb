package docker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/cronium/orchestrator/internal/testenv"
)

func TestDangling(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	owned := func(id string) bool { return id == "mine" }
	summary := func(exec string, age time.Duration) container.Summary {
		return container.Summary{Labels: map[string]string{LabelExecution: exec}, Created: now.Add(-age).Unix()}
	}
	tests := []struct {
		name string
		c    container.Summary
		want bool
	}{
		{"old and unowned", summary("lost", time.Hour), true},
		{"owned", summary("mine", time.Hour), false},
		{"no execution id", summary("", time.Hour), false},
		{"within the grace", summary("lost", time.Minute), false},
		// Created says 5m ago, but may be 4m59.9s ago: Docker rounds down.
		{"at the grace, to the second", summary("lost", 5*time.Minute), false},
		{"a second past the grace", summary("lost", 5*time.Minute+time.Second+time.Millisecond), true},
	}
	for _, tt := range tests {
		if got := dangling(tt.c, 5*time.Minute, owned, now); got != tt.want {
			t.Errorf("%s: dangling = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRemoveDanglingNeedsAnOrchestratorID(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	called := false
	owners := func() (func(string) bool, error) { called = true; return nil, nil }
	if n, err := e.RemoveDangling(t.Context(), time.Minute, owners); err == nil || n != 0 || called {
		t.Fatalf("RemoveDangling without an orchestrator id = %d, %v (owners called: %v); want an error", n, err, called)
	}
}

// listRecorder is a client that notes when a container listing returned.
type listRecorder struct {
	apiClient
	listed atomic.Bool
}

func (c *listRecorder) ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error) {
	list, err := c.apiClient.ContainerList(ctx, opts)
	c.listed.Store(true)
	return list, err
}

// TestRemoveDangling: an old container no job owns is removed, running or
// not; an owned one stays, and so does another orchestrator's. The owners
// are read after the listing, and a failure to read them removes nothing.
func TestRemoveDangling(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	orch := uniqueID("orch")
	rec := &listRecorder{}
	e := d.executorWrapping(func(api apiClient) apiClient { rec.apiClient = api; return rec },
		func(o *Options) { o.OrchestratorID = orch })
	lost := d.labelled(orch, uniqueID("lost"), true)
	mine := d.labelled(orch, uniqueID("mine"), false)
	theirs := d.labelled(uniqueID("other-orch"), uniqueID("theirs"), true)
	const grace = time.Millisecond
	for _, c := range []labelledContainer{lost, mine, theirs} {
		d.awaitOlder(c, grace)
	}

	failing := func() (func(string) bool, error) { return nil, errors.New("journal unreadable") }
	if n, err := e.RemoveDangling(t.Context(), grace, failing); n != 0 || err == nil {
		t.Fatalf("with unreadable owners: removed %d, err %v; want nothing removed and the error", n, err)
	}
	d.requireContainer(lost, true)

	owners := func() (func(string) bool, error) {
		if !rec.listed.Load() {
			t.Error("owners read before the containers were listed")
		}
		return func(id string) bool { return id == mine.executionID }, nil
	}
	n, err := e.RemoveDangling(t.Context(), grace, owners)
	if err != nil || n != 1 {
		t.Fatalf("RemoveDangling = %d, %v; want 1 removed", n, err)
	}
	d.requireContainer(lost, false)
	d.requireContainer(mine, true)
	d.requireContainer(theirs, true)

	if n, err := e.RemoveDangling(t.Context(), grace, owners); err != nil || n != 0 {
		t.Fatalf("second pass = %d, %v; want nothing left to remove", n, err)
	}
}

// TestRemoveDanglingKeepsYoungContainers: a container younger than the
// grace may belong to a job being set up, owned or not.
func TestRemoveDanglingKeepsYoungContainers(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	orch := uniqueID("orch")
	e := d.executor(func(o *Options) { o.OrchestratorID = orch })
	young := d.labelled(orch, uniqueID("young"), true)
	none := func() (func(string) bool, error) { return func(string) bool { return false }, nil }
	if n, err := e.RemoveDangling(t.Context(), time.Hour, none); err != nil || n != 0 {
		t.Fatalf("RemoveDangling = %d, %v; want nothing removed", n, err)
	}
	d.requireContainer(young, true)
}

var uniqueSeq atomic.Int64

func uniqueID(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), uniqueSeq.Add(1))
}

type labelledContainer struct{ id, executionID string }

// labelled creates a container labelled as a job container of orch, and
// starts it if asked; it is removed when the test ends.
func (d *dockerEnv) labelled(orch, executionID string, start bool) labelledContainer {
	d.t.Helper()
	ctx := context.Background()
	cfg := &container.Config{
		Image: "cronium/runtime-bash:1",
		Cmd:   []string{"sleep", "600"},
		Labels: map[string]string{LabelManaged: "true", LabelOrchestrator: orch,
			LabelJob: "job-" + executionID, LabelExecution: executionID},
	}
	resp, err := d.cli.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: "none"}, nil, nil,
		containerName(executionID))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() {
		_ = d.cli.ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true})
	})
	if start {
		if err := d.cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
			d.t.Fatal(err)
		}
	}
	return labelledContainer{id: resp.ID, executionID: executionID}
}

// awaitOlder waits until c counts as older than grace, as RemoveDangling
// judges from the listing.
func (d *dockerEnv) awaitOlder(c labelledContainer, grace time.Duration) {
	d.t.Helper()
	list, err := d.cli.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("id", c.id))})
	if err != nil || len(list) != 1 {
		d.t.Fatalf("list %s: %d containers, %v", shortID(c.id), len(list), err)
	}
	none := func(string) bool { return false }
	testenv.Eventually(d.t, testenv.Patience, "the container to be older than the grace", func() bool {
		return dangling(list[0], grace, none, time.Now())
	})
}

func (d *dockerEnv) requireContainer(c labelledContainer, exists bool) {
	d.t.Helper()
	if got := len(d.containers(c.executionID)) == 1; got != exists {
		d.t.Fatalf("container of %s exists: %v, want %v", c.executionID, got, exists)
	}
}
