package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/cronium/orchestrator/executors"
)

// multiProgress is a multi-server execution's progress, kept by the
// Executor across the Runs of one execution. The combined output carries
// "[name] " prefixes, so the actor's resume offsets (bytes of combined
// output) cannot be mapped back to each server's spool: this ledger holds
// the per-server offsets instead. It lives as long as the process; after
// an orchestrator restart a multi-server execution that already delivered
// output is not resumable.
type multiProgress struct {
	servers                  []*serverProgress
	combinedOut, combinedErr int64
}

type serverProgress struct {
	started          bool
	stdout, stderr   int64  // spool bytes consumed
	pendOut, pendErr []byte // a partial line carried to the next Run
	tailOut, tailErr tail
	done             bool
	result           executors.ServerResult
}

// runMulti runs the script on every server in parallel. Each server is a
// target of its own (its own spool, named by its execution id); the job's
// exit code is 0 when all succeed, else 1; Servers says which failed (the
// job's verdict turns that into the backend's convention).
func (e *Executor) runMulti(ctx context.Context, spec executors.Spec, out executors.Output) (executors.Result, error) {
	mp, err := e.progressFor(spec)
	if err != nil {
		return executors.Result{}, err
	}
	sink := &multiSink{out: out, mp: mp}
	errs := make([]error, len(spec.Servers))
	var wg sync.WaitGroup
	for i, srv := range spec.Servers {
		if sp := mp.servers[i]; !sp.done {
			wg.Go(func() { errs[i] = e.runOneOfMany(ctx, spec, i, srv, sp, sink) })
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		// Some server's run may live on: keep the ledger for the next Run.
		if cause := context.Cause(ctx); errors.Is(cause, executors.ErrDetached) {
			return executors.Result{}, fmt.Errorf("ssh: %w", cause)
		}
		return executors.Result{}, executors.Retryable(err)
	}
	e.dropProgress(spec.ExecutionID)
	return aggregate(ctx, mp), nil
}

// runOneOfMany runs server i's part. It returns an error only when that
// part may still be running (retryable, detached); any other failure is
// the server's result.
func (e *Executor) runOneOfMany(ctx context.Context, spec executors.Spec, i int, srv executors.Server,
	sp *serverProgress, sink *multiSink) error {
	name := srv.Label()
	po := &prefixer{sink: sink, prefix: "[" + name + "] ", pending: sp.pendOut}
	pe := &prefixer{sink: sink, stderr: true, prefix: "[" + name + "] ", pending: sp.pendErr}
	t := &target{srv: srv, executionID: executors.ServerExecutionID(spec.ExecutionID, i), jobExecutionID: spec.ExecutionID,
		resume: executors.Resume{Resuming: spec.Resume.Resuming || sp.started, StdoutBytes: sp.stdout, StderrBytes: sp.stderr}}
	sp.started = true
	// The script sees its server's execution id: that is its record.
	sub := spec
	sub.ExecutionID = t.executionID
	res, err := e.runTarget(ctx, sub, t, executors.Output{
		Stdout: io.MultiWriter(po, &sp.tailOut), Stderr: io.MultiWriter(pe, &sp.tailErr), Started: sink.started})
	sp.stdout, sp.stderr = t.stdout, t.stderr
	sp.pendOut, sp.pendErr = bytes.Clone(po.pending), bytes.Clone(pe.pending)
	if err != nil && (executors.IsRetryable(err) || errors.Is(err, executors.ErrDetached)) {
		return fmt.Errorf("server %s: %w", name, err)
	}
	po.flush()
	pe.flush()
	if err != nil {
		_ = sink.write(true, []byte("["+name+"] cronium: "+err.Error()+"\n"))
	}
	sp.pendOut, sp.pendErr, sp.done = nil, nil, true
	sp.result = executors.ServerResult{ServerID: srv.ID, ServerName: name, ExecutionID: t.executionID,
		Result: res, Err: err, Stdout: sp.tailOut.String(), Stderr: sp.tailErr.String()}
	return nil
}

func aggregate(ctx context.Context, mp *multiProgress) executors.Result {
	var res executors.Result
	var failed []string
	var costs []executors.Cost // of the servers that ran their part
	for _, sp := range mp.servers {
		r := sp.result
		res.Servers = append(res.Servers, r)
		switch {
		case r.Err != nil:
			failed = append(failed, fmt.Sprintf("%s (%v)", r.ServerName, r.Err))
		case !r.Result.Succeeded():
			failed = append(failed, fmt.Sprintf("%s (%s)", r.ServerName, r.Result.Describe()))
		}
		if r.Err == nil {
			costs = append(costs, r.Result.Cost)
		}
		res.TimedOut = res.TimedOut || r.Result.TimedOut
		mergeTimings(&res.Timings, r.Result.Timings)
	}
	res.Cost = executors.SumCosts(costs)
	res.Exited = true
	if len(failed) > 0 {
		res.ExitCode = 1
		res.Reason = fmt.Sprintf("%d of %d servers failed: %s", len(failed), len(mp.servers), strings.Join(failed, "; "))
	}
	res.Cancelled = ctx.Err() != nil
	return res
}

// mergeTimings widens t to cover s: the job spans its servers.
func mergeTimings(t *executors.Timings, s executors.Timings) {
	earliest := func(a *time.Time, b time.Time) {
		if !b.IsZero() && (a.IsZero() || b.Before(*a)) {
			*a = b
		}
	}
	latest := func(a *time.Time, b time.Time) {
		if b.After(*a) {
			*a = b
		}
	}
	earliest(&t.SetupStarted, s.SetupStarted)
	latest(&t.SetupCompleted, s.SetupCompleted)
	earliest(&t.ExecStarted, s.ExecStarted)
	latest(&t.ExecCompleted, s.ExecCompleted)
	earliest(&t.CleanupStarted, s.CleanupStarted)
	latest(&t.CleanupCompleted, s.CleanupCompleted)
}

// progressFor finds or makes the ledger of spec's execution.
func (e *Executor) progressFor(spec executors.Spec) (*multiProgress, error) {
	e.ledgerMu.Lock()
	defer e.ledgerMu.Unlock()
	if mp := e.ledger[spec.ExecutionID]; mp != nil && len(mp.servers) == len(spec.Servers) {
		if mp.combinedOut != spec.Resume.StdoutBytes || mp.combinedErr != spec.Resume.StderrBytes {
			e.opts.Logger.Warn("ssh: resume offsets differ from the bytes this executor delivered; trusting its own count",
				"execution_id", spec.ExecutionID, "resume_stdout", spec.Resume.StdoutBytes, "delivered_stdout", mp.combinedOut)
		}
		return mp, nil
	}
	if spec.Resume.Resuming && (spec.Resume.StdoutBytes > 0 || spec.Resume.StderrBytes > 0) {
		return nil, fmt.Errorf("%w: multi-server execution %s delivered output before this process started; "+
			"per-server offsets are not known", executors.ErrNotResumable, spec.ExecutionID)
	}
	mp := &multiProgress{servers: make([]*serverProgress, len(spec.Servers))}
	for i := range mp.servers {
		mp.servers[i] = &serverProgress{}
	}
	e.ledger[spec.ExecutionID] = mp
	return mp, nil
}

func (e *Executor) dropProgress(executionID string) {
	e.ledgerMu.Lock()
	defer e.ledgerMu.Unlock()
	delete(e.ledger, executionID)
}

// multiSink serialises whole lines of all servers into the job's output.
type multiSink struct {
	mu          sync.Mutex
	out         executors.Output
	mp          *multiProgress
	startedOnce sync.Once
}

// started reports the job started when its first server launched it.
func (s *multiSink) started() { s.startedOnce.Do(s.out.NotifyStarted) }

func (s *multiSink) write(stderr bool, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, n := s.out.Stdout, &s.mp.combinedOut
	if stderr {
		w, n = s.out.Stderr, &s.mp.combinedErr
	}
	k, err := orDiscard(w).Write(b)
	*n += int64(k)
	return err
}

// maxLine bounds a buffered partial line; a longer one is broken.
const maxLine = 64 << 10

// prefixer writes one server's stream to the sink line by line, each line
// prefixed with the server's name, so that lines of different servers
// never interleave mid-line. The complete lines of a chunk go to the sink
// in one write, built in a buffer reused across chunks.
type prefixer struct {
	sink    *multiSink
	stderr  bool
	prefix  string
	pending []byte
	buf     []byte
}

func (p *prefixer) Write(b []byte) (int, error) {
	n := len(b)
	p.buf = p.buf[:0]
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		p.buf = append(append(append(p.buf, p.prefix...), p.pending...), b[:i+1]...)
		p.pending = p.pending[:0]
		b = b[i+1:]
	}
	p.pending = append(p.pending, b...)
	if len(p.pending) > maxLine {
		p.buf = append(append(append(p.buf, p.prefix...), p.pending...), '\n')
		p.pending = p.pending[:0]
	}
	if len(p.buf) == 0 {
		return n, nil
	}
	return n, p.sink.write(p.stderr, p.buf)
}

// flush writes a trailing partial line, ending it.
func (p *prefixer) flush() {
	if len(p.pending) > 0 {
		_ = p.sink.write(p.stderr, append(append([]byte(p.prefix), p.pending...), '\n'))
		p.pending = nil
	}
}

// tail keeps the last executors.ServerOutputMax bytes written to it. It
// compacts only when twice over, so a chatty job does not copy the whole
// buffer on every write.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*executors.ServerOutputMax {
		t.b = append(t.b[:0:0], t.b[len(t.b)-executors.ServerOutputMax:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	return string(t.b[max(0, len(t.b)-executors.ServerOutputMax):])
}
