// Package executors defines how one execution of a job is run, independent of
// where it runs. Implementations live in sub-packages (docker, ssh, httpreq,
// remote); they never import the actors or the backend client: they read a
// Spec, write output to the writers they are given, and return a Result.
package executors

import (
	"context"
	"io"
)

// Executor runs executions.
//
// Contract, for every implementation:
//
//   - Run is safe to call from several goroutines for different executions.
//   - Run starts the execution named by spec.ExecutionID, or, when one by that
//     id already exists (a restarted actor, a restarted orchestrator), attaches
//     to it instead of starting it again. Output already delivered by earlier
//     calls (spec.Resume) is not written again.
//   - A non-zero exit, a timeout, an OOM kill and a cancellation are Results,
//     not errors. err != nil means the infrastructure failed; IsRetryable(err)
//     says whether a later Run may resume the execution.
//   - Cancelling ctx stops the execution and its resources are released before
//     Run returns, unless the cancellation cause is ErrDetached: then Run
//     returns promptly with an error wrapping ErrDetached and leaves the
//     execution running for a later Run to resume.
//   - Run enforces spec.Timeout itself, measured from when the execution
//     started (not from when this call started, so a resumed run keeps its
//     deadline).
//   - Writes to out happen only while Run is executing; after Run returns the
//     writers are never touched again.
type Executor interface {
	Run(ctx context.Context, spec Spec, out Output) (Result, error)
	// Abandon stops and removes whatever is left of an execution that will
	// not be resumed. It is idempotent: an execution that is already gone
	// is not an error. With an empty spec.ExecutionID it abandons every
	// execution of spec.JobID that this orchestrator started (recovering
	// the jobs of an earlier process, whose execution ids are unknown).
	Abandon(ctx context.Context, spec Spec) error
}

// Output receives an execution's output as it is produced. Writes must be
// cheap: executors call them from their read loops.
type Output struct {
	Stdout io.Writer
	Stderr io.Writer
	// Started, if set, is called once when this Run has started the
	// execution (the script may be running; its first output may come
	// before the call). A caller that keeps the fact passes
	// Resume.Started to later Runs.
	Started func()
}

// NotifyStarted calls o.Started if it is set.
func (o Output) NotifyStarted() {
	if o.Started != nil {
		o.Started()
	}
}
