package ssh

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cronium/orchestrator/executors"
)

// Abandon stops what is left of an execution on its server(s) (TERM, the
// stop grace, KILL of the job's process group) and removes its spools; with
// an empty spec.ExecutionID, of every execution of spec.JobID. An execution
// with nothing left is not an error. The servers must be in spec: without
// them Abandon cannot reach anything and says so (ErrServersUnknown)
// rather than report a job stopped.
func (e *Executor) Abandon(ctx context.Context, spec executors.Spec) error {
	if len(spec.Servers) == 0 {
		what := "job " + spec.JobID
		if spec.ExecutionID != "" {
			what = "execution " + spec.ExecutionID + " of " + what
		}
		return errorf(ErrServersUnknown, "ssh: cannot stop %s: its servers are not known to this process", what)
	}
	tags := make([]string, len(spec.Servers))
	for i := range tags {
		id := spec.ExecutionID
		if len(spec.Servers) > 1 {
			id = executors.ServerExecutionID(spec.ExecutionID, i)
		}
		tags[i] = spoolTag(spec.JobID, id)
		if spec.ExecutionID == "" {
			tags[i] = jobSpools(spec.JobID)
		}
		e.launched.Delete(id)
	}
	e.dropProgress(spec.ExecutionID)
	if len(spec.Servers) == 1 {
		return e.abandonServer(ctx, spec.Servers[0], tags[0])
	}
	errs := make([]error, len(spec.Servers))
	var wg sync.WaitGroup
	for i, srv := range spec.Servers {
		wg.Go(func() {
			if err := e.abandonServer(ctx, srv, tags[i]); err != nil {
				errs[i] = fmt.Errorf("server %s: %w", srv.Label(), err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// abandonServer stops and removes every spool on srv that tag matches.
func (e *Executor) abandonServer(ctx context.Context, srv executors.Server, tag string) error {
	// Like a resumed run, cleanup of a job that exists goes past the breaker.
	l, err := e.pool.acquire(ctx, srv, true)
	if err != nil {
		return err
	}
	defer l.release()
	return e.abandonOver(ctx, l, srv, tag)
}

// abandonOver is abandonServer on a slot the caller holds.
func (e *Executor) abandonOver(ctx context.Context, l *lease, srv executors.Server, tag string) error {
	_, err := runStep(ctx, l, srv, spoolVars(e.opts, tag), "abandon", nil)
	return err
}
