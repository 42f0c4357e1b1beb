// Package ssh runs scripts on remote servers over SSH.
//
// A job runs detached on the server: one session (the run step) uploads
// the script and its environment into a private spool directory, starts it
// in its own session, with stdout, stderr and the exit status spooled to
// files, and streams the spool back. A dropped connection therefore costs
// nothing on the server: Run returns a retryable error, and a later Run
// with spec.Resume attaches to the same remote run (the follow step) and
// continues from the bytes already delivered. The job is never started
// twice, and its spool is removed once its result is read.
//
// Connections are pooled per (server, user, credentials), verified against
// known_hosts or pinned fingerprints, kept alive with a deadline, and
// guarded by a circuit breaker per server.
package ssh

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/cronium/orchestrator/executors"
)

// Executor runs executions over SSH. It implements executors.Executor.
type Executor struct {
	opts Options
	pool *pool

	// launched holds the execution ids (per server) whose launch the
	// server confirmed and whose result is not in yet: if their spool is
	// gone on resume, they ran, and must not be started again.
	launched sync.Map

	// ledger keeps multi-server progress across the Runs of one
	// execution (see multi.go).
	ledgerMu sync.Mutex
	ledger   map[string]*multiProgress
}

var _ executors.Executor = (*Executor)(nil)

// New validates opts and returns an Executor. It starts nothing: the pool
// dials on demand.
func New(opts Options) (*Executor, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.HostKeyPolicy == PolicyInsecureIgnore {
		opts.Logger.Warn("SSH HOST KEY VERIFICATION IS DISABLED (ssh.host_key_policy: insecure-ignore): " +
			"any machine that intercepts a connection receives the job's script, environment and credentials")
	}
	hk := &hostKeys{path: opts.KnownHosts, policy: opts.HostKeyPolicy, log: opts.Logger}
	return &Executor{opts: opts, pool: newPool(opts, hk), ledger: map[string]*multiProgress{}}, nil
}

// Close closes every pooled connection and waits for the pool's
// goroutines. Jobs still running on servers keep running.
func (e *Executor) Close() error {
	e.pool.close()
	return nil
}

// Run runs spec on its server, or on every server of a multi-server job
// (see executors.Executor for the contract).
func (e *Executor) Run(ctx context.Context, spec executors.Spec, out executors.Output) (executors.Result, error) {
	if err := validate(spec); err != nil {
		return executors.Result{}, err
	}
	if len(spec.Servers) > 1 {
		return e.runMulti(ctx, spec, out)
	}
	return e.runTarget(ctx, spec, &target{srv: spec.Servers[0], executionID: spec.ExecutionID,
		jobExecutionID: spec.ExecutionID, resume: spec.Resume}, out)
}

func validate(spec executors.Spec) error {
	switch {
	case spec.Script == nil:
		return fmt.Errorf("%w: an SSH job needs a script", executors.ErrInvalidSpec)
	case len(spec.Servers) == 0:
		return fmt.Errorf("%w: an SSH job needs a server", executors.ErrInvalidSpec)
	case spec.ExecutionID == "":
		return fmt.Errorf("%w: execution id is empty", executors.ErrInvalidSpec)
	}
	switch spec.Script.Language {
	case executors.Bash, executors.Python, executors.Node:
	default:
		return fmt.Errorf("%w: unknown script language %q", executors.ErrInvalidSpec, spec.Script.Language)
	}
	if strings.IndexByte(spec.Script.Content, 0) >= 0 {
		// No shell string holds one (see unpackProgram), nor does the
		// backend's text column.
		return fmt.Errorf("%w: the script contains a NUL byte", executors.ErrInvalidSpec)
	}
	for _, s := range spec.Servers {
		if s.Host == "" || s.Username == "" {
			return fmt.Errorf("%w: server %q needs a host and a username", executors.ErrInvalidSpec, s.Label())
		}
	}
	return checkEnv(spec.Environment())
}
