package job

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/output"
)

// Outcomes label how jobs ended, in metrics and logs.
const (
	OutcomeSuccess   = "success"
	OutcomeFailure   = "failure"
	OutcomeTimeout   = "timeout"
	OutcomeCancelled = "cancelled"
	OutcomeError     = "error"
)

// ExitCouldNotRun is the exit code reported when the orchestrator could not
// run the job at all (as docker run uses 125 for its own failures).
const ExitCouldNotRun = 125

// exitCancelled is reported for a job stopped before it had an exit status.
const exitCancelled = 130

// verdict is what the backend is told about a finished job.
type verdict struct {
	status   string // /complete status
	exitCode int
	outcome  string
	reason   string // appended to stderr: the backend shows stderr as the error
}

// judge maps how a job ended onto the backend's conventions: timeout is
// status timeout with exit code -1 (the UI's TIMEOUT); a multi-server job
// that failed on some servers is completed with 100+failed (PARTIAL); a
// stop forced by our own shutdown is a failure, not the user's cancel.
func judge(o Outcome, cancel *CancelRequest, giveUp string, servers int) verdict {
	r := o.Result
	switch {
	case giveUp != "":
		return verdict{backend.StatusFailed, ExitCouldNotRun, OutcomeError, giveUp}
	case errors.Is(o.Err, executors.ErrNotResumable):
		// It ran, but where it ran was lost: say so, not "could not run".
		return verdict{backend.StatusFailed, ExitCouldNotRun, OutcomeError, "lost track of the job: " + o.Err.Error()}
	case o.Err != nil:
		return verdict{backend.StatusFailed, ExitCouldNotRun, OutcomeError, "could not run the job: " + o.Err.Error()}
	case r.TimedOut:
		return verdict{backend.StatusTimeout, -1, OutcomeTimeout, orDefault(r.Reason, "timed out")}
	case r.Cancelled && cancel != nil && cancel.Shutdown:
		return verdict{backend.StatusFailed, exitOf(r), OutcomeCancelled, "stopped: " + cancel.Reason}
	case r.Cancelled:
		why := "cancelled"
		if cancel != nil && cancel.Reason != "" {
			why = "cancelled: " + cancel.Reason
		}
		return verdict{backend.StatusCancelled, exitOf(r), OutcomeCancelled, why}
	case servers > 1:
		return judgeMulti(r, servers)
	case r.Succeeded():
		return verdict{backend.StatusCompleted, 0, OutcomeSuccess, ""}
	}
	return verdict{backend.StatusFailed, exitOf(r), OutcomeFailure, orDefault(r.Reason, r.Describe())}
}

// judgeMulti counts the servers that failed: the backend's convention is
// exit code 100+failed, completed (PARTIAL) when some succeeded.
func judgeMulti(r executors.Result, servers int) verdict {
	failed := 0
	for _, s := range r.Servers {
		if s.Err != nil || !s.Result.Succeeded() {
			failed++
		}
	}
	switch {
	case failed == 0 && r.Succeeded():
		return verdict{backend.StatusCompleted, 0, OutcomeSuccess, ""}
	case failed > 0 && failed < servers:
		return verdict{backend.StatusCompleted, 100 + failed, OutcomeFailure,
			fmt.Sprintf("partial: failed on %d of %d servers", failed, servers)}
	case failed > 0:
		return verdict{backend.StatusFailed, 100 + failed, OutcomeFailure,
			orDefault(r.Reason, fmt.Sprintf("failed on all %d servers", servers))}
	}
	return verdict{backend.StatusFailed, exitOf(r), OutcomeFailure, orDefault(r.Reason, r.Describe())}
}

func exitOf(r executors.Result) int {
	if r.Exited {
		return r.ExitCode
	}
	return exitCancelled
}

func orDefault(s, def string) string {
	if strings.TrimSpace(s) == "" {
		return def
	}
	return s
}

// outcomeOfStatus labels a completion by its status, for a job restored
// with its completion owed (its outcome was not kept).
func outcomeOfStatus(status string) string {
	switch status {
	case backend.StatusCompleted:
		return OutcomeSuccess
	case backend.StatusTimeout:
		return OutcomeTimeout
	case backend.StatusCancelled:
		return OutcomeCancelled
	}
	return OutcomeFailure
}

// CouldNotRun is the completion of a job the orchestrator ended without a
// result of its own (lost track of it, or gave up on it): failed with
// ExitCouldNotRun, the output kept so far, and the reason last in stderr.
func CouldNotRun(stdout, stderr, reason string, now time.Time) backend.Completion {
	return backend.Completion{
		Status:    backend.StatusFailed,
		ExitCode:  ExitCouldNotRun,
		Output:    backend.CompletionOutput{Stdout: stdout, Stderr: output.AppendNote(stderr, reason)},
		Timestamp: now,
	}
}
