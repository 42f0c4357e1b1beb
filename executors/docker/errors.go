package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/cronium/orchestrator/executors"
)

// ErrImageMissing means the job's runtime image is not on the daemon and
// could not be pulled (or the pull policy forbids pulling). Retrying the
// execution does not help until someone provides the image.
var ErrImageMissing = errors.New("runtime image not available")

// errNameInUse is a create that found a container by the execution's name:
// an earlier Run created it, and Run adopts it instead.
var errNameInUse = errors.New("container name already in use")

// transient reports whether err is a failure to talk to the daemon (refused,
// reset, timed out, unavailable) rather than the daemon's answer. Only
// these are worth a retry: an answer (an errdefs class) stays the same.
func transient(err error) bool {
	if err == nil {
		return false
	}
	if client.IsErrConnectionFailed(err) || cerrdefs.IsUnavailable(err) {
		return true
	}
	// Our own APITimeout; the caller's cancellation is handled before
	// errors are classified.
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	// *url.Error, *net.OpError: the request never got an answer.
	var ne net.Error
	return errors.As(err, &ne)
}

// setupError marks a failed Docker call before the script ran: retryable
// when the daemon could not be reached, since the call may have taken
// effect and a resume finds out; final otherwise.
func setupError(err error) error {
	if transient(err) {
		return executors.Retryable(err)
	}
	return err
}

// runError marks a failure while the container may be running: any error
// is retryable, since a later Run can pick the container up again, unless
// the container itself is gone, which nothing can recover from.
func runError(id string, err error) error {
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("%w: container %s was removed while running: %w", executors.ErrNotResumable, shortID(id), err)
	}
	return executors.Retryable(err)
}

// keepContainer reports whether Run returns with the container left for a
// later Run: after a detach or a retryable failure.
func keepContainer(err error) bool {
	return errors.Is(err, executors.ErrDetached) || executors.IsRetryable(err)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
