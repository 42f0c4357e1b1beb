package docker

import (
	"bytes"
	"context"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

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
