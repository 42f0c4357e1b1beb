package ssh

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/orchestrator/executors"
)

// helperFiles are the runtime helpers' files, none when the job has no
// helpers. The server-side paths and environment are set by remote.sh
// (job), where the spool's path is known.
func helperFiles(spec executors.Spec) []executors.File {
	if spec.Helpers == nil {
		return nil
	}
	return spec.Helpers.Install("", nil).Files
}

// startRelay carries the script's runtime helper calls while this Run
// follows the job, over a session of its own on the job's connection: no
// port, so any number of jobs on one server each have theirs. A resumed
// Run starts a new one, which takes over from the relay the lost
// connection left (see the helpers' relay.sh). stop ends it and waits.
func (r *remoteRun) startRelay(ctx context.Context) (stop func()) {
	h := r.spec.Helpers
	if h == nil || r.spec.Script == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A relay that ends while the job runs (its session refused or
		// closed by the server) is started again, more slowly each time.
		for ends := 1; ; ends++ {
			more, err := r.relay(ctx, h)
			if !more || ctx.Err() != nil {
				return
			}
			r.log.Debug("ssh: helpers relay ended; starting it again", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(100*time.Millisecond<<min(ends, 9), 30*time.Second)):
			}
		}
	}()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(relayStopWait):
			// A server that ignores the session's TERM keeps the channel
			// open until the job ends; the job's Run must not wait for it.
			// The relay ends at the latest with the connection.
			r.log.Warn("ssh: the helpers relay did not stop; leaving it to end with its job")
		}
	}
}

// relayStopWait bounds how long a Run waits for its relay to stop.
const relayStopWait = 10 * time.Second

// relay runs one relay session until it or ctx ends; more says whether
// the job may still need one (false: the server has no spool or no
// helpers for it).
func (r *remoteRun) relay(ctx context.Context, h executors.Helpers) (more bool, err error) {
	sess, err := r.l.newSession()
	if err != nil {
		return true, fmt.Errorf("relay session: %w", err)
	}
	defer r.l.endSession(sess)
	stdin, err := sess.StdinPipe()
	if err != nil {
		return true, err
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return true, err
	}
	cmd, sync := remoteCommand(spoolVars(r.e.opts, r.tag), "relay")
	if err := sess.Start(cmd); err != nil {
		return true, fmt.Errorf("relay: %w", err)
	}
	// A session's pipes do not watch ctx, and sshd closes the channel only
	// once the remote side let go of its stdout: TERM stops the relay
	// there (remote.sh), then the session ends and Serve with it.
	unwatch := context.AfterFunc(ctx, func() {
		_ = sess.Signal(ssh.SIGTERM)
		_ = sess.Close()
	})
	defer unwatch()
	fr := newFrameReader(stdout, sync)
	first, err := fr.next()
	switch {
	case err != nil:
		return true, fmt.Errorf("relay: %w", err)
	case first.kind != 'R':
		return false, nil // the job has no helpers there, or no spool any more
	}
	return true, h.Serve(ctx, r.t.srv.Name, fr.r, stdin)
}
