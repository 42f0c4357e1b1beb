package docker

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// settleUpload returns the state of an adopted container once its bootstrap
// is past the upload. A running container whose script has not arrived is
// one whose uploading Run ended mid-stream (nobody else writes to it): the
// engine has closed its stdin, so tar fails at once and the container exits
// with the bootstrap's code, which adopt then reads as "never arrived" and
// starts the job afresh. Following it instead would report tar's complaint
// as the job's result.
//
// When the arrival cannot be told after a few checks (the exec fails: a
// pids limit reached, say) or the container does not exit within the API
// timeout, the container is followed as it is: a script that might be running is never stopped on
// a guess.
func (x *execution) settleUpload(ctx context.Context, info container.InspectResponse) (container.InspectResponse, error) {
	if info.State == nil || !info.State.Running {
		return info, nil
	}
	arrived, err := x.scriptArrived(ctx)
	wait := backoff.NewExponentialBackOff()
	wait.InitialInterval, wait.MaxInterval = 100*time.Millisecond, time.Second
	for tries := 1; err != nil; tries++ {
		// Most often the container was exiting during the check (its
		// bootstrap gave up as the check began, and an exec into a dying
		// container says nothing): its exit then tells, once the engine
		// has seen it.
		again, found, ierr := x.e.inspect(ctx, x.id)
		if ierr == nil && found && again.State != nil && !again.State.Running {
			return again, nil
		}
		if tries == arrivalChecks {
			x.log.Warn("could not tell whether the container's script arrived; following it", "error", err, "checks", tries)
			return info, nil
		}
		select {
		case <-time.After(wait.NextBackOff()):
		case <-ctx.Done():
			return info, ctx.Err()
		}
		arrived, err = x.scriptArrived(ctx)
	}
	if arrived {
		return info, nil
	}
	x.log.Info("the container's script never arrived (its upload was cut); waiting for its bootstrap to give up",
		"container_id", shortID(x.id))
	wctx, cancel := context.WithTimeout(ctx, x.e.opts.APITimeout)
	defer cancel()
	exited, errs := x.e.api.ContainerWait(wctx, x.id, container.WaitConditionNotRunning)
	select {
	case <-exited:
	case err := <-errs:
		x.log.Warn("the container did not exit without its script; following it", "container_id", shortID(x.id), "error", err)
		return info, nil
	}
	again, found, err := x.e.inspect(ctx, x.id)
	switch {
	case err != nil:
		return info, err
	case !found:
		return info, fmt.Errorf("container %s was removed while its bootstrap gave up", shortID(x.id))
	}
	return again, nil
}

// arrivalChecks bounds the checks of a container whose answer says
// nothing (about 3 s of back-off in all).
const arrivalChecks = 5

// scriptArrived asks a running container whether its bootstrap has marked
// the script's arrival.
func (x *execution) scriptArrived(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, x.e.opts.APITimeout)
	defer cancel()
	created, err := x.e.api.ContainerExecCreate(ctx, x.id, container.ExecOptions{
		User:         x.plan.config.User,
		Cmd:          []string{"/bin/sh", "-c", "if [ -e " + arrivedMarker + " ]; then echo arrived; else echo waiting; fi"},
		AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return false, fmt.Errorf("create the arrival check: %w", err)
	}
	hj, err := x.e.api.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return false, fmt.Errorf("start the arrival check: %w", err)
	}
	defer hj.Close()
	// A hijacked stream no longer watches ctx: closing it ends the read.
	defer context.AfterFunc(ctx, hj.Close)()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&capped{&stdout}, &capped{&stderr}, hj.Reader); err != nil {
		return false, fmt.Errorf("read the arrival check: %w", err)
	}
	switch strings.TrimSpace(stdout.String()) {
	case "arrived":
		return true, nil
	case "waiting":
		return false, nil
	}
	return false, fmt.Errorf("the arrival check said %q %q", stdout.String(), stderr.String())
}

// scriptNeverArrived tells whether an exited container is one whose
// bootstrap never received the whole script: the Run that started it ended
// during the upload, so tar read a short stream. The bootstrap runs the
// script only after unpacking it, so nothing of the job ran, and the
// execution can start afresh. The signs: the bootstrap's exit code, no
// standard output, and nothing on standard error but tar's complaint and
// the bootstrap's own line.
func (x *execution) scriptNeverArrived(ctx context.Context, info container.InspectResponse) (bool, error) {
	if info.State == nil || strconv.Itoa(info.State.ExitCode) != unpackFailedCode {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, x.e.opts.APITimeout)
	defer cancel()
	rc, err := x.e.api.ContainerLogs(ctx, x.id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return false, err
	}
	defer rc.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&capped{&stdout}, &capped{&stderr}, rc); err != nil {
		return false, err
	}
	return onlyUnpackFailure(stdout.String(), stderr.String()), nil
}

// onlyUnpackFailure is scriptNeverArrived's reading of the output.
func onlyUnpackFailure(stdout, stderr string) bool {
	if stdout != "" {
		return false
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if lines[len(lines)-1] != unpackFailed {
		return false
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.HasPrefix(l, "tar: ") {
			return false
		}
	}
	return true
}

// capped keeps the first 64 KiB written to it: enough to tell the
// bootstrap's few lines from a script's output.
type capped struct{ b *bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := 64<<10 - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
