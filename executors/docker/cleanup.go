package docker

import (
	"context"
	"errors"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// cleanup removes the container once Run has its result (or a final error).
// It runs on a fresh bounded context: a cancelled Run must still clean up.
// A failure is logged, not returned: the result is real either way, and a
// labelled leftover can be found later (cronium.managed=true). A started
// container that is gone by now counts as removed too.
func (x *execution) cleanup(ctx context.Context) {
	x.timings.CleanupStarted = time.Now()
	if err := x.e.remove(ctx, x.id); err != nil {
		x.log.Warn("container left behind", "container_id", shortID(x.id), "error", err)
	} else if x.started {
		x.e.opts.Observer.ContainerRemoved()
	}
	x.timings.CleanupCompleted = time.Now()
}

// remove force-removes a container (killing it if it runs). One that is
// already gone, or already being removed, counts as removed.
func (e *Executor) remove(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.APITimeout)
	defer cancel()
	err := e.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err == nil || cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
		return nil
	}
	return fmt.Errorf("remove container %s: %w", shortID(id), err)
}

// abandonJob removes every container this orchestrator started for a job,
// found by their labels: the job of an earlier process, whose execution
// ids this one does not know. This process did not report them started, so
// it does not report them removed either.
func (e *Executor) abandonJob(ctx context.Context, jobID string) error {
	lctx, cancel := context.WithTimeout(ctx, e.opts.APITimeout)
	defer cancel()
	list, err := e.api.ContainerList(lctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelJob+"="+jobID),
		filters.Arg("label", LabelOrchestrator+"="+e.opts.OrchestratorID))})
	if err != nil {
		return fmt.Errorf("list containers of job %s: %w", jobID, err)
	}
	var errs []error
	for _, c := range list {
		errs = append(errs, e.remove(ctx, c.ID))
	}
	return errors.Join(errs...)
}
