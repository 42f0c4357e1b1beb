package executors

import (
	"fmt"
	"time"
)

// Result is how an execution ended. A non-zero exit, a timeout, an OOM kill
// and a cancellation are all Results; how the backend shows them is decided
// by the caller, not here.
type Result struct {
	// ExitCode is the process's exit status as the OS reported it (137
	// for a SIGKILL in a container, for instance). It is meaningful only
	// when Exited is true.
	ExitCode int
	Exited   bool
	// Signal names the signal that ended the process ("KILL"), when known.
	Signal string

	OOMKilled bool
	TimedOut  bool
	Cancelled bool

	// Reason explains a non-success in words a user reads, e.g.
	// "killed: out of memory (limit 64 MiB)". Empty on success.
	Reason string

	Timings Timings

	// Cost is what the execution consumed, as far as it was measured; for
	// a multi-server job, all servers together (see SumCosts).
	Cost Cost

	// Servers holds one entry per server for multi-server SSH jobs, in
	// the order of Spec.Servers.
	Servers []ServerResult
}

// Succeeded is true when the process exited 0 and nothing stopped it.
func (r Result) Succeeded() bool {
	return r.Exited && r.ExitCode == 0 && !r.TimedOut && !r.Cancelled && !r.OOMKilled
}

// ServerResult is one server's part of a multi-server job.
type ServerResult struct {
	ServerID    string
	ServerName  string
	ExecutionID string
	Result      Result
	// Err is set when the server could not run its part at all.
	Err error
	// Stdout and Stderr are the server's own output, without the
	// "[name] " prefixes of the job's combined output: its last
	// ServerOutputMax bytes each, for the server's execution record.
	Stdout, Stderr string
}

// ServerOutputMax bounds ServerResult.Stdout and ServerResult.Stderr.
const ServerOutputMax = 64 << 10

// Timings are the phases of one execution. Zero times were not reached.
type Timings struct {
	SetupStarted, SetupCompleted     time.Time
	ExecStarted, ExecCompleted       time.Time
	CleanupStarted, CleanupCompleted time.Time
}

// Describe is a one-line summary for logs and CLI output.
func (r Result) Describe() string {
	switch {
	case r.Cancelled:
		return "cancelled"
	case r.TimedOut:
		return "timed out"
	case r.OOMKilled:
		return "killed: out of memory"
	case r.Signal != "":
		return "killed by signal " + r.Signal
	case r.Exited:
		return fmt.Sprintf("exited with code %d", r.ExitCode)
	}
	return "ended without an exit status"
}
