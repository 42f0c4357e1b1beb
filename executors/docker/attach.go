package docker

import (
	"context"
	"fmt"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
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
	x.timings.ExecStarted = x.timings.SetupCompleted
	if err := x.e.startContainer(ctx, x.id); err != nil {
		output.close(0)
		return nil, err
	}
	output.feed(func() { x.sendFiles(hj) })
	return &session{output: output, wait: x.e.startWait(ctx, x.id), started: x.timings.ExecStarted}, nil
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

func (e *Executor) startContainer(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err // do not start a script nobody waits for
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.APITimeout)
	defer cancel()
	if err := e.api.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	e.obs.ContainerStarted()
	return nil
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
