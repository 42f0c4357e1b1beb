package docker

import (
	"context"
	"fmt"
	"io"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/cronium/orchestrator/executors"
)

// startRelay carries the script's runtime helper calls while the container
// runs: the relay runs in the container through docker exec (no network,
// no port, no mount: it works in every network mode), its stdin and stdout
// handed to the job's Helpers. A relay that ends while the container runs
// is started again. The returned stop ends it and waits for it.
func (x *execution) startRelay(ctx context.Context) (stop func()) {
	h := x.spec.Helpers
	if h == nil || len(x.plan.relay) == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ends := 0; ctx.Err() == nil; {
			began := time.Now()
			err := x.relayOnce(ctx, h)
			switch {
			case ctx.Err() != nil:
				return
			case isNotRunning(err):
				return // the script ended: nothing is left to call
			}
			// A relay ends only when something is wrong (an image without
			// /bin/sh, a relay killed from inside): start it again, ever
			// more slowly while it keeps ending at once.
			ends++
			if time.Since(began) > relayHealthy {
				ends = 1
			}
			x.log.Debug("helpers relay ended; starting it again", "err", err, "ends", ends)
			select {
			case <-ctx.Done():
			case <-time.After(relayBackoff(ends)):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// relayHealthy is how long a relay must have run for its end to count as
// the first of a new series.
const relayHealthy = 30 * time.Second

// relayBackoff is the wait before starting a relay again after it ended
// ends times in a row: 100 ms, doubling, at most 30 s.
func relayBackoff(ends int) time.Duration {
	return min(50*time.Millisecond<<min(ends, 10), 30*time.Second)
}

// relayOnce runs one relay until it or ctx ends.
func (x *execution) relayOnce(ctx context.Context, h executors.Helpers) error {
	hj, err := x.startRelayExec(ctx)
	if err != nil {
		return err
	}
	// The hijacked connection does not watch ctx: closing it ends both
	// loops below.
	unwatch := context.AfterFunc(ctx, func() { hj.Close() })
	defer unwatch()
	requests, w := io.Pipe()
	demuxed := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(w, io.Discard, hj.Reader)
		w.CloseWithError(err)
		demuxed <- err
	}()
	err = h.Serve(ctx, "", requests, hj.Conn)
	hj.Close()
	requests.Close()
	<-demuxed
	return err
}

// startRelayExec creates and starts the relay's exec.
func (x *execution) startRelayExec(ctx context.Context) (types.HijackedResponse, error) {
	created, err := x.e.api.ContainerExecCreate(ctx, x.id, container.ExecOptions{
		User: x.plan.config.User, Cmd: x.plan.relay,
		AttachStdin: true, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return types.HijackedResponse{}, fmt.Errorf("create the helpers relay: %w", err)
	}
	hj, err := x.e.api.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return hj, fmt.Errorf("start the helpers relay: %w", err)
	}
	return hj, nil
}

// isNotRunning: docker refuses to exec in a container that is not running
// (a conflict), or that is gone.
func isNotRunning(err error) bool {
	return cerrdefs.IsConflict(err) || cerrdefs.IsNotFound(err)
}
