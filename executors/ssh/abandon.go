package ssh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cronium/orchestrator/executors"
)

// Abandon stops what is left of an execution on its server(s) (TERM, the
// stop grace, KILL of the job's process group) and removes its spools. An
// execution with nothing left is not an error.
func (e *Executor) Abandon(ctx context.Context, spec executors.Spec) error {
	e.launched.Delete(spec.ExecutionID)
	for i := range spec.Servers {
		e.launched.Delete(executors.ServerExecutionID(spec.ExecutionID, i))
	}
	if len(spec.Servers) <= 1 {
		if len(spec.Servers) == 0 {
			return nil
		}
		return e.abandonServer(ctx, spec.Servers[0], spec.ExecutionID)
	}
	e.dropProgress(spec.ExecutionID)
	errs := make([]error, len(spec.Servers))
	var wg sync.WaitGroup
	for i, srv := range spec.Servers {
		wg.Go(func() {
			if err := e.abandonServer(ctx, srv, executors.ServerExecutionID(spec.ExecutionID, i)); err != nil {
				errs[i] = fmt.Errorf("server %s: %w", srv.Label(), err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// abandonServer stops and removes every spool of executionID on srv.
func (e *Executor) abandonServer(ctx context.Context, srv executors.Server, executionID string) error {
	// Like a resumed run, cleanup of a job that exists goes past the breaker.
	l, err := e.pool.acquire(ctx, srv, true)
	if err != nil {
		return err
	}
	defer l.release()
	sess, err := l.newSession()
	if err != nil {
		return errorf(ErrConnLost, "ssh: %s: %v", srv.Label(), err)
	}
	defer l.endSession(sess)
	var stdout, diag limitedBuffer
	sess.Stdout, sess.Stderr = &stdout, &diag
	done := make(chan error, 1)
	go func() { done <- sess.Run(remoteCommand(spoolVars(e.opts, spoolTag(executionID)), "abandon")) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Close()
		<-done
		return fmt.Errorf("ssh: abandon on %s: %w", srv.Label(), context.Cause(ctx))
	}
	if strings.HasPrefix(stdout.String(), "D") {
		return nil
	}
	if err == nil {
		err = errors.New("no confirmation")
	}
	return fmt.Errorf("%w: abandon on %s: %v%s", ErrRemote, srv.Label(), err, diag.suffix())
}
