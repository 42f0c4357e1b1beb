package docker

import (
	"context"
	"fmt"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/cronium/orchestrator/executors"
)

// start attaches to the new container, starts it and sends it the script.
// Attaching comes first so that no output is lost, however fast the script.
func (x *execution) start(ctx context.Context) (*session, error) {
	hj, err := x.attach(ctx)
	if err != nil {
		return nil, err
	}
	stdout, stderr := newOutputWriter(x.out.Stdout, x.log, "stdout"), newOutputWriter(x.out.Stderr, x.log, "stderr")
	output := startStream(func() error {
		_, err := stdcopy.StdCopy(stdout, stderr, hj.Reader)
		return err
	}, hj.Close)
	x.timings.SetupCompleted = time.Now()
	if err := x.startContainer(ctx); err != nil {
		output.close(0)
		return nil, x.discard(ctx, err)
	}
	// The job's timeout runs from here: a busy engine can take seconds to
	// create and start a container, and that is not the script's time.
	x.timings.ExecStarted = time.Now()
	x.out.NotifyStarted()
	output.feed(func() { x.sendFiles(hj) })
	return &session{output: output, wait: x.e.startWait(ctx, x.id)}, nil
}

func (x *execution) attach(ctx context.Context) (types.HijackedResponse, error) {
	// The deadline bounds the upgrade only: a hijacked connection no longer
	// watches the context, so the stream is ended by closing it.
	ctx, cancel := context.WithTimeout(ctx, x.e.opts.APITimeout)
	defer cancel()
	hj, err := x.e.api.ContainerAttach(ctx, x.id, container.AttachOptions{
		Stream: true, Stdin: true, Stdout: true, Stderr: true,
	})
	if err != nil {
		return hj, fmt.Errorf("attach to container: %w", err)
	}
	return hj, nil
}

func (x *execution) startContainer(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err // do not start a script nobody waits for
	}
	ctx, cancel := context.WithTimeout(ctx, x.e.opts.APITimeout)
	defer cancel()
	if err := x.e.api.ContainerStart(ctx, x.id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	x.started = true
	x.e.opts.Observer.ContainerStarted()
	return nil
}

// discard removes a container whose start failed, so that the next Run
// creates it afresh. The daemon may have started it all the same (the call
// timed out, or the caller went away during it), but its attach is closed:
// the script can no longer reach it, and a Run that adopted it would report
// the bootstrap's failure as the job's result. When the container cannot be
// removed either, the execution is not resumable.
func (x *execution) discard(ctx context.Context, startErr error) error {
	if err := x.e.remove(ctx, x.id); err != nil {
		return fmt.Errorf("%w: %v, and the container, which may run without its script, could not be removed: %v",
			executors.ErrNotResumable, startErr, err)
	}
	x.id = ""
	return startErr
}

// sendFiles streams the script's tar to stdin and closes it. A failure
// needs no handling here: the bootstrap then fails, and the exit status
// and stderr say so.
func (x *execution) sendFiles(hj types.HijackedResponse) {
	if err := writeFiles(hj.Conn, x.plan.files); err != nil {
		x.log.Warn("sending the script to the container failed", "error", err)
		return
	}
	if err := hj.CloseWrite(); err != nil {
		x.log.Debug("closing the container's stdin failed; the padded tar ends anyway", "error", err)
	}
}
