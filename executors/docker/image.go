package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"

	"github.com/cronium/orchestrator/config"
)

// Images are not inspected before every create: a create that fails with
// NotFound leads here, so the common case (image present) costs no call.

// imageAbsent reports whether ref is missing from the daemon.
func (e *Executor) imageAbsent(ctx context.Context, ref string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.APITimeout)
	defer cancel()
	_, err := e.api.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return false, nil
	case cerrdefs.IsNotFound(err):
		return true, nil
	}
	return false, fmt.Errorf("inspect image %s: %w", ref, err)
}

// obtain makes a missing image available as the pull policy allows.
func (e *Executor) obtain(ctx context.Context, ref string) error {
	if e.opts.PullPolicy == config.PullNever {
		return fmt.Errorf("%w: image %s is not on the docker daemon and the pull policy is %q; build it with scripts/build-images.sh",
			ErrImageMissing, ref, config.PullNever)
	}
	return e.pull(ctx, ref)
}

// pull pulls ref, waiting for the whole progress stream: the daemon reports
// a failed pull inside the stream, after a 200 response.
func (e *Executor) pull(ctx context.Context, ref string) (err error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.PullTimeout)
	defer cancel()
	start := time.Now()
	defer func() { e.opts.Observer.APICall("pull", time.Since(start), err) }()
	e.opts.Logger.Info("pulling image", "image", ref)
	rc, err := e.api.ImagePull(ctx, ref, image.PullOptions{})
	if err == nil {
		err = readPullStream(rc)
		rc.Close()
	}
	if err != nil {
		return fmt.Errorf("%w: pull image %s: %w", ErrImageMissing, ref, err)
	}
	e.opts.Logger.Info("pulled image", "image", ref, "duration", time.Since(start))
	return nil
}

// pullMessage is the part of a pull progress message that reports failure.
type pullMessage struct {
	Error       string `json:"error"`
	ErrorDetail struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

func readPullStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m pullMessage
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read pull progress: %w", err)
		}
		if m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}
