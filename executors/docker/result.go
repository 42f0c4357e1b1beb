package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/cronium/orchestrator/executors"
)

// result reads how the container ended. Docker reports a process killed by
// signal N as exit code 128+N (docker-init passes the script's on); the
// signal is named only when the cause is known, since a script may also
// exit 137 on its own.
// cause is ctx's cancellation cause, named when Run cancelled the script.
func (x *execution) result(info container.InspectResponse, stop stopCause, cause error) executors.Result {
	st := info.State
	r := executors.Result{
		Exited:    true,
		ExitCode:  st.ExitCode,
		OOMKilled: st.OOMKilled,
		TimedOut:  stop == stoppedTimeout,
		Cancelled: stop == stoppedCancel,
	}
	if r.ExitCode > 128 && (r.OOMKilled || r.TimedOut || r.Cancelled) {
		r.Signal = executors.SignalName(r.ExitCode - 128)
	}
	var reasons []string
	switch {
	case r.TimedOut:
		reasons = append(reasons, fmt.Sprintf("timed out after %s", x.spec.Timeout))
	case r.Cancelled:
		reasons = append(reasons, cancelReason(cause, ""))
	}
	if r.OOMKilled {
		var limit int64
		if info.HostConfig != nil {
			limit = info.HostConfig.Memory
		}
		reasons = append(reasons, fmt.Sprintf("killed: out of memory (limit %s)", formatBytes(limit)))
	}
	if len(reasons) == 0 && r.ExitCode != 0 {
		reasons = append(reasons, fmt.Sprintf("exited with code %d", r.ExitCode))
	}
	r.Reason = strings.Join(reasons, "; ")
	return r
}

// cancelReason is a cancelled Result's Reason: "cancelled", then when (if
// given), then the cause unless it is a plain cancellation.
func cancelReason(cause error, when string) string {
	r := "cancelled"
	if when != "" {
		r += " " + when
	}
	if cause == nil || errors.Is(cause, context.Canceled) || errors.Is(cause, executors.ErrCancelled) {
		return r
	}
	return r + ": " + cause.Error()
}

// formatBytes prints a memory limit the way users set it.
func formatBytes(b int64) string {
	const mib, gib = 1 << 20, 1 << 30
	switch {
	case b <= 0:
		return "none"
	case b%gib == 0:
		return fmt.Sprintf("%d GiB", b/gib)
	case b%mib == 0:
		return fmt.Sprintf("%d MiB", b/mib)
	case b >= mib:
		return fmt.Sprintf("%.1f MiB", float64(b)/mib)
	}
	return fmt.Sprintf("%d bytes", b)
}
