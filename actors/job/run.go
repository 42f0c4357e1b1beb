package job

import (
	"context"
	"sync"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/journal"
	"github.com/cronium/orchestrator/messages"
	"github.com/cronium/orchestrator/output"
)

// phase is how far a job has come. It only moves forward.
type phase int

const (
	phasePlan     phase = iota // build the plan (maybe fetch server credentials)
	phaseRegister              // create the execution record(s)
	phaseStart                 // PUT status running, once
	phaseExecute               // run (or resume) the executor
	phaseFinalize              // the log actor ships the final execution update
	phaseComplete              // POST /complete, once
	phaseDone
)

var phaseNames = [...]string{"planning", "registering", "starting", "running", "finalizing", "completing", "done"}

func (p phase) String() string { return phaseNames[p] }

// Run is one job's state. It outlives JobActor instances: a crashed,
// restarted or killed-and-respawned actor picks the job up where the last
// one left it, so no step is done twice. The actor that drives a Run is its
// only writer, except where a method says otherwise; the mutex makes the
// fields safe to read from the supervisor and the admin API.
type Run struct {
	mu sync.Mutex

	job       backend.Job
	claimedAt time.Time
	execID    string
	out       *output.Log

	phase     phase
	plan      *jobspec.Plan
	stepBusy  bool  // a step goroutine is in flight
	stepErr   error // the last step's failure
	instances int   // JobActor instances started for this run

	attempts   int
	current    *attempt // the attempt in flight, if any
	lastDetach error    // why the last attempt stopped without a result

	outcome  *outcome
	cancel   *cancelRequest
	giveUp   string // set by the supervisor when the restart budget is spent
	started  time.Time
	finished time.Time

	completion  *backend.Completion
	completed   bool  // /complete was acknowledged by the backend
	completeErr error // /complete failed definitively; the supervisor retries later

	journaled journal.Stage // the last stage kept in the journal
	resumed   bool          // restored from the journal: the execution may exist
	launched  bool          // the executor reported the execution started

	// Retries by the job's policy: tries counts the attempts begun (each
	// with its own execution record), retrying says the attempt that just
	// ended runs again after retryIn, awaitingReset that the log actor is
	// starting afresh, notBefore when the next attempt may start.
	tries         int
	retrying      bool
	awaitingReset bool
	retryIn       time.Duration
	notBefore     time.Time
}

// attempt is one executor.Run in flight.
type attempt struct {
	n      int
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// outcome is how the job ended.
type outcome struct {
	result executors.Result
	err    error // the job could not run (infrastructure or invalid job)
}

type cancelRequest struct {
	reason   string
	shutdown bool
}

// NewRun starts the state of a claimed job.
func NewRun(j backend.Job, claimedAt time.Time, execID string, out *output.Log) *Run {
	return &Run{job: j, claimedAt: claimedAt, execID: execID, out: out, tries: 1}
}

// JobID is the backend's id of the job.
func (r *Run) JobID() string { return r.job.ID }

// Output is the job's output log.
func (r *Run) Output() *output.Log { return r.out }

// ExecutionIDs are the execution records the job reports to, once known.
func (r *Run) ExecutionIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.plan == nil {
		return nil
	}
	ids := make([]string, len(r.plan.Executions))
	for i, e := range r.plan.Executions {
		ids[i] = e.ID
	}
	return ids
}

// Status reads the Run's state; safe from any goroutine.
func (r *Run) Status() messages.JobStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := messages.JobStatus{JobID: r.job.ID, Phase: r.phase.String(), Attempts: r.attempts,
		Restarts: max(r.instances-1, 0), ClaimedAt: r.claimedAt, StartedAt: r.started}
	if r.plan != nil {
		s.Executor = string(r.plan.Kind)
	}
	if r.cancel != nil {
		s.Cancel = r.cancel.reason
	}
	return s
}

// Detachable says the job is executing: stopping its actor leaves the
// execution running, journaled, for a later process to resume. Safe from
// any goroutine.
func (r *Run) Detachable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.phase == phaseExecute && r.current != nil && r.cancel == nil && r.journaled == journal.Running
}

// CompletionPending returns the completion that could not be delivered, if
// any, so that the supervisor can retry it later. Safe from any goroutine.
func (r *Run) CompletionPending() (backend.Completion, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.completion == nil || r.completed || r.completeErr == nil {
		return backend.Completion{}, false
	}
	return *r.completion, true
}

// MarkCompleted records that a retried completion reached the backend.
func (r *Run) MarkCompleted() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.completed, r.completeErr = true, nil
}

// detachCurrent lets the attempt in flight go on without this actor
// instance: the executor keeps the execution alive for the next instance.
func (r *Run) detachCurrent() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current != nil {
		r.current.cancel(executors.ErrDetached)
	}
}

// FailNow ends the job from outside its actor: the supervisor's last resort
// when a JobActor keeps crashing even after it was given up on. It returns
// the completion to send (built once, so a retry sends the same); ok is
// false when nothing must be sent, because the job was completed or its
// /complete is in flight right now.
func (r *Run) FailNow(reason string, now time.Time) (c backend.Completion, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.completed || (r.stepBusy && r.phase == phaseComplete) {
		return backend.Completion{}, false
	}
	if r.completion == nil {
		snap := r.out.Snapshot()
		r.completion = &backend.Completion{
			Status:    backend.StatusFailed,
			ExitCode:  ExitCouldNotRun,
			Output:    backend.CompletionOutput{Stdout: snap.Stdout, Stderr: output.AppendNote(snap.Stderr, reason)},
			Timestamp: now,
		}
	}
	r.phase = phaseDone
	return *r.completion, true
}

// CompleteFailed records that a /complete sent by the supervisor failed;
// CompletionPending then offers it for a later retry.
func (r *Run) CompleteFailed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.completeErr = err
}
