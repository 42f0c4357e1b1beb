package ssh

import (
	"fmt"
	"time"

	"github.com/cronium/orchestrator/executors"
)

// resultFromStatus maps the spooled status to a Result. The status comes
// from a POSIX shell, which reports death by signal n as 128+n: that is
// where Signal comes from, with the shell's usual ambiguity (a script that
// runs "exit 137" reads as KILL too).
func resultFromStatus(code int, how string, timeout time.Duration) executors.Result {
	r := executors.Result{Exited: true, ExitCode: code}
	if code > 128 {
		r.Signal = executors.SignalName(code - 128)
	}
	switch how {
	case "timeout":
		r.TimedOut = true
		r.Reason = fmt.Sprintf("timed out after %s; its process group was stopped", timeout)
	case "cancelled", "abandoned":
		r.Cancelled = true
		r.Reason = "cancelled; its process group was stopped"
	case "lost":
		r = executors.Result{Reason: "the job's wrapper process on the server died without recording an exit status " +
			"(server rebooted, out of memory, or killed); what was left of the job was stopped"}
	default:
		if code != 0 {
			r.Reason = r.Describe()
		}
	}
	return r
}
