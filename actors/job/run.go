package job

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/helpers"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/journal"
	"github.com/cronium/orchestrator/mask"
	"github.com/cronium/orchestrator/messages"
	"github.com/cronium/orchestrator/output"
)

// Run is one job. It outlives JobActor instances: a crashed, restarted or
// killed-and-respawned actor picks the job up where the last one left it,
// so no step is done twice. While a JobActor lives it is the Run's only
// writer; once the job finished (or its actor was stopped for good), the
// supervisor owns it. The mutex is for readers on other goroutines (the
// supervisor, the admin API).
type Run struct {
	mu sync.Mutex
	st State

	job        backend.Job
	claimedAt  time.Time
	execID     string
	out        *output.Log
	plan       *jobspec.Plan
	completion *backend.Completion
	finished   time.Time

	// The runtime helpers of the current execution, and what a restarted
	// process found kept of them.
	helpers     *helpers.Service
	helpersKept helpers.Saved

	// Work in flight, kept across actor instances so that a new one
	// waits for it instead of starting it again.
	current *attempt
	pending *pendingStep
}

// attempt is one executor.Run in flight. Its goroutine writes res and err
// before it closes done; nobody reads them before.
type attempt struct {
	n      int
	cancel context.CancelCauseFunc
	done   chan struct{}
	res    executors.Result
	err    error
	// launched is set when the executor started the execution; the actor
	// reads it once the attempt ended, in case the message saying so
	// reached an instance that is gone.
	launched atomic.Bool
}

// pendingStep is one backend step in flight, written like attempt.
type pendingStep struct {
	seq   int
	done  chan struct{}
	err   error
	apply func(*Run) // what the answer changes in the Run, applied by the actor
}

// NewRun starts the state of a claimed job.
func NewRun(j backend.Job, claimedAt time.Time, execID string, out *output.Log) *Run {
	return &Run{job: j, claimedAt: claimedAt, execID: execID, out: out, st: State{Tries: 1}}
}

// MaskOutput sets the masker of the job's output from the job as it is
// now and the policy: the supervisor calls it when the job is claimed and
// when it is restored from the journal (whose job holds every secret the
// masker needs, so nothing of it is kept anywhere else); the actor builds
// it again when the server's credentials arrive. Safe from any goroutine.
func (r *Run) MaskOutput(p mask.Policy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out.SetMasker(p.ForJob(r.job))
}

// JobID is the backend's id of the job.
func (r *Run) JobID() string { return r.job.ID }

// LogID is the job's metadata.logId (its live view in the UI); empty
// when it has none.
func (r *Run) LogID() string { return r.job.Metadata.LogID.String() }

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
	s := messages.JobStatus{JobID: r.job.ID, Phase: r.st.Phase.String(), Attempts: r.st.Attempts,
		Restarts: r.st.Restarts, ClaimedAt: r.claimedAt, StartedAt: r.st.StartedAt}
	if r.plan != nil {
		s.Executor = string(r.plan.Kind)
	}
	if r.st.Cancel != nil {
		s.Cancel = r.st.Cancel.Reason
	}
	return s
}

// Detachable says the job is executing: stopping its actor leaves the
// execution running, journaled, for a later process to resume. Safe from
// any goroutine.
func (r *Run) Detachable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.st
	return s.Phase == phaseExecute && s.Executing && s.Cancel == nil && s.Journaled == journal.Running
}

// CompletionPending returns the completion that could not be delivered, if
// any, so that the supervisor can retry it later. Safe from any goroutine.
func (r *Run) CompletionPending() (backend.Completion, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.completion == nil || r.st.Completed || !r.st.CompleteFailed {
		return backend.Completion{}, false
	}
	return *r.completion, true
}

// The methods below are the supervisor's, for a Run whose actor is gone.

// MarkCompleted records that a retried completion reached the backend.
func (r *Run) MarkCompleted() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.Completed, r.st.CompleteFailed = true, false
}

// CompleteFailed records that a /complete sent by the supervisor failed;
// CompletionPending then offers it for a later retry.
func (r *Run) CompleteFailed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.CompleteFailed = true
}

// FailNow ends the job whose actor kept crashing even after it was given
// up on, and was stopped. It returns the completion to send (built once,
// so a retry sends the same); ok is false when nothing must be sent,
// because the job was completed or its /complete is in flight right now.
func (r *Run) FailNow(reason string, now time.Time) (c backend.Completion, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st.Completed || r.st.Step == stepComplete {
		return backend.Completion{}, false
	}
	if r.completion == nil {
		snap := r.out.Snapshot()
		c := CouldNotRun(snap.Stdout, snap.Stderr, r.out.Masker().Text(reason), now)
		r.completion = &c
	}
	r.st.Phase = phaseDone
	if r.current != nil { // stop what is left of it
		r.current.cancel(errGivenUp)
	}
	return *r.completion, true
}

// detachCurrent lets the attempt in flight go on without the actor
// instance that started it: the executor keeps the execution alive for
// the next instance, or for the next process.
func (r *Run) detachCurrent() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current != nil {
		r.current.cancel(executors.ErrDetached)
	}
}
