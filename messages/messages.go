// Package messages holds the messages actors exchange, as plain structs
// named by intent. Messages private to one actor stay unexported in its
// own package.
package messages

import (
	"encoding/json"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
)

// JobsClaimed: the poller claimed these jobs; the supervisor runs them.
type JobsClaimed struct {
	Jobs      []backend.Job
	ClaimedAt time.Time
}

// JobsUnreadable: the poller claimed these jobs but could not decode them;
// they end failed with their reason.
type JobsUnreadable struct {
	IDs     []string
	Reasons []string // each job's, when known
	Reason  string   // for the others
}

// JobsExcess: a poll answered more jobs than there were free slots (Kept
// of them were taken, in the JobsClaimed sent just before); these are the
// rest. They are claimed under this orchestrator's id: the supervisor
// releases them, except any it runs (a job can come twice).
type JobsExcess struct {
	Jobs []backend.Job
	Kept int
}

// SlotsFreed: this many job slots became free; the poller may claim again.
type SlotsFreed struct{ N int }

// StopPolling: claim nothing more (shutdown).
type StopPolling struct{}

// OrphansFound: the backend lists these jobs as claimed or running under
// this orchestrator's id.
type OrphansFound struct{ Rows []backend.JobRow }

// CancelJob asks for a job to be stopped. Reason is shown to the user.
type CancelJob struct {
	JobID  string
	Reason string
	// Shutdown marks a stop forced by the orchestrator's own shutdown,
	// which is reported as a failure rather than a user's cancellation.
	Shutdown bool
}

// JobFinished: the job's terminal update was sent (or definitively could
// not be); its slot is free.
type JobFinished struct {
	JobID    string
	Executor string
	Outcome  string // success, failure, timeout, cancelled, error
	Duration time.Duration
}

// FinalizeOutput asks the log actor to ship the execution's final update
// (after every earlier snapshot) and then send OutputFinalized to ReplyTo.
type FinalizeOutput struct {
	ExitCode int
	// Reason explains a non-success; it is appended to the error output.
	Reason string
	Result executors.Result
	// What the script set through its runtime helpers, for the update's
	// metadata (the job's /complete carries them too).
	ScriptOutput json.RawMessage
	Condition    *bool
	ReplyTo      *actor.PID
}

// OutputFinalized: the final execution update was shipped (or given up on).
type OutputFinalized struct{}

// ResetOutput asks the log actor to begin a retried job's next attempt,
// after the last attempt's final update: the output log and what was
// shipped start afresh. It answers OutputReset to ReplyTo.
type ResetOutput struct{ ReplyTo *actor.PID }

// OutputReset: the log actor is ready for the next attempt.
type OutputReset struct{}

// OutputAvailable nudges the log actor: new output was appended.
type OutputAvailable struct{}

// GiveUpJob: the job's restart budget is spent; stop what is left of it
// and report it failed with Reason.
type GiveUpJob struct{ Reason string }

// JobInterrupted tells the supervisor that a job's execution was cut by
// something a restart can heal (a dropped SSH connection, a restarting
// Docker daemon). The supervisor spends the job's restart budget on it
// and answers ResumeJob, or GiveUpJob when the budget is spent.
type JobInterrupted struct {
	JobID  string
	Reason string
}

// ResumeJob lets an interrupted job resume its execution.
type ResumeJob struct{}

// Crash makes the receiving actor panic, to exercise the restart path.
type Crash struct{ Reason string }

// Drain starts a graceful shutdown: stop claiming, let running jobs finish
// within Grace, then stop them. Done is closed when no job is left.
type Drain struct {
	Grace time.Duration
	Done  chan struct{}
}

// The kinds of actor the supervisor runs. A PID names its kind
// (supervisor/root/job/job_1 is a job actor), and metrics label actors by
// kind alone.
const (
	KindSupervisor = "supervisor" // the root
	KindPoller     = "poller"
	KindJob        = "job"
	KindLog        = "log"
)

// ActorKinds is every kind, in the order the actor tree lists them.
var ActorKinds = []string{KindSupervisor, KindPoller, KindJob, KindLog}

// ListActors asks the supervisor for the actor tree; it responds with an
// ActorTree.
type ListActors struct{}

// ActorTree is the supervisor's view of its actors.
type ActorTree struct {
	Actors []ActorInfo
	// Restarts are the latest restarts, oldest first (a bounded ring).
	Restarts []RestartEvent
}

// ActorInfo describes one live or restarting actor.
type ActorInfo struct {
	PID       string    `json:"pid"`
	Kind      string    `json:"kind"` // one of ActorKinds
	JobID     string    `json:"jobId,omitempty"`
	State     string    `json:"state"`
	Restarts  int       `json:"restarts"`
	StartedAt time.Time `json:"startedAt"`
}

// IsRoot reports whether a is the root supervisor, which nothing respawns.
func (a ActorInfo) IsRoot() bool { return a.Kind == KindSupervisor }

// ListJobs asks the supervisor for the jobs it runs; it responds with a
// JobList. Lines is how many recent output lines to include per job.
type ListJobs struct{ Lines int }

// JobList is the supervisor's running jobs, for the admin API.
type JobList struct {
	Jobs []JobInfo
}

// JobStatus is how far a running job has come.
type JobStatus struct {
	JobID     string    `json:"jobId"`
	Phase     string    `json:"phase"`
	Executor  string    `json:"executor,omitempty"`
	Attempts  int       `json:"attempts"`
	Restarts  int       `json:"restarts"`
	ClaimedAt time.Time `json:"claimedAt"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	Cancel    string    `json:"cancel,omitempty"`
}

// JobInfo is one running job as the admin API shows it: its status and
// the tail of its output.
type JobInfo struct {
	JobStatus
	Output []OutputLine `json:"output"`
}

// OutputLine is one recent line of a job's output.
type OutputLine struct {
	Stream string `json:"stream"` // stdout or stderr
	Text   string `json:"text"`
}

// RestartEvent is one restart the supervisor saw: a crash hollywood
// restarted, or an actor stopped from outside and respawned.
type RestartEvent struct {
	At     time.Time `json:"at"`
	PID    string    `json:"pid"`
	Kind   string    `json:"kind"`
	JobID  string    `json:"jobId,omitempty"`
	Reason string    `json:"reason"`
}
