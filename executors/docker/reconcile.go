package docker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/cronium/orchestrator/executors"
)

// RemoveDangling force-removes this orchestrator's job containers, in any
// state, that no job owns: whatever a crash, a failed cleanup or a lost
// create answer left behind. A container is removed when its execution id
// (label) is not owned, according to owners, and it was created more than
// grace ago: a younger one may belong to a job still being set up. Other
// orchestrators' containers, and containers without an execution id, are
// never touched.
//
// owners is called once, after the listing (see executors.Owners); an
// error from it removes nothing. A container that is already gone counts
// as removed. Cancelling ctx stops between removals; the one under way
// finishes within the API timeout. It returns how many it removed, and
// every failure. Removals are not reported to the Observer, which pairs
// them with the starts of this process: the caller counts them.
func (e *Executor) RemoveDangling(ctx context.Context, grace time.Duration, owners executors.Owners) (int, error) {
	if e.opts.OrchestratorID == "" {
		return 0, errors.New("remove dangling containers: no orchestrator id to tell ours apart")
	}
	list, err := e.listOurs(ctx)
	if err != nil {
		return 0, err
	}
	if len(list) == 0 {
		return 0, nil
	}
	owned, err := owners()
	if err != nil {
		return 0, fmt.Errorf("remove dangling containers: %w", err)
	}
	removed := 0
	var errs []error
	for _, c := range list {
		if !dangling(c, grace, owned, time.Now()) {
			continue
		}
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("remove dangling containers: %w", context.Cause(ctx)))
			break
		}
		if err := e.remove(ctx, c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
		e.opts.Logger.Info("removed a container no job owns", "container_id", shortID(c.ID),
			"execution_id", c.Labels[LabelExecution], "job_id", c.Labels[LabelJob], "state", c.State,
			"created", time.Unix(c.Created, 0).UTC())
	}
	return removed, errors.Join(errs...)
}

// listOurs lists the job containers of this orchestrator, in any state.
func (e *Executor) listOurs(ctx context.Context) ([]container.Summary, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.APITimeout)
	defer cancel()
	list, err := e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelOrchestrator+"="+e.opts.OrchestratorID))})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return list, nil
}

// dangling decides whether c, listed at now, is a leftover. Docker gives
// the creation time in whole seconds, rounded down: the container may be
// up to a second younger, so the grace counts from the end of that second.
func dangling(c container.Summary, grace time.Duration, owned func(string) bool, now time.Time) bool {
	id := c.Labels[LabelExecution]
	if id == "" || owned(id) {
		return false
	}
	created := time.Unix(c.Created+1, 0)
	return now.Sub(created) > grace
}
