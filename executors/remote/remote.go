// Package remote is the placeholder for Phase 2 remote agents: an agent
// process on each server that pulls its jobs over an authenticated channel
// instead of the orchestrator opening SSH sessions to it.
//
// It exists so that the Executor interface is proven to have room for a
// third kind of target. Until Phase 2 it refuses every job with an error
// that says so; nothing routes jobs to it today.
package remote

import (
	"context"
	"errors"

	"github.com/cronium/orchestrator/executors"
)

// ErrNotAvailable is returned for every job until remote agents exist.
var ErrNotAvailable = errors.New("remote agents are not available before Phase 2")

// Executor is the remote-agent executor placeholder.
type Executor struct{}

// Run refuses the job.
func (Executor) Run(context.Context, executors.Spec, executors.Output) (executors.Result, error) {
	return executors.Result{}, ErrNotAvailable
}

// Abandon has nothing to stop.
func (Executor) Abandon(context.Context, executors.Spec) error { return nil }

var _ executors.Executor = Executor{}
