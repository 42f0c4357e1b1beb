package docker

import (
	"context"

	cerrdefs "github.com/containerd/errdefs"
)

// signal sends sig to the container's init, which passes it on to the
// script's process group (see TINI_KILL_PROCESS_GROUP in create.go). It
// reports whether the container may still be running: false when Docker
// says it is not (it exited on its own meanwhile, and the wait reports
// how). Any other failure is logged and counted as sent, so the stop
// sequence goes on to SIGKILL and its own deadline.
func (x *execution) signal(ctx context.Context, sig string) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), x.e.opts.APITimeout)
	defer cancel()
	err := x.e.api.ContainerKill(ctx, x.id, sig)
	switch {
	case err == nil:
		x.log.Info("signalled container", "container_id", shortID(x.id), "signal", sig)
		return true
	case cerrdefs.IsConflict(err), cerrdefs.IsNotFound(err):
		return false
	}
	x.log.Warn("signalling the container failed", "container_id", shortID(x.id), "signal", sig, "error", err)
	return true
}
