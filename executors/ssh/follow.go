package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/orchestrator/executors"
)

// stopSlack is how long past the stop grace we wait for the server to
// confirm a stopped job before we give up on the session.
const stopSlack = 10 * time.Second

// stepSession is the session of a step that streams a job (run, follow):
// its stdin carries run's upload, then control's commands; its stdout the
// frames.
type stepSession struct {
	sess  *ssh.Session
	stdin io.WriteCloser
	fr    *frameReader
	diag  limitedBuffer
}

// startStep starts step over l. The caller ends st.sess with l.endSession.
func (r *remoteRun) startStep(l *lease, step string, vars [][2]string) (*stepSession, error) {
	sess, err := l.newSession()
	if err != nil {
		return nil, r.lost(err)
	}
	st := &stepSession{sess: sess}
	stdin, err := sess.StdinPipe()
	if err == nil {
		var stdout io.Reader
		if stdout, err = sess.StdoutPipe(); err == nil {
			sess.Stderr = &st.diag
			cmd, sync := remoteCommand(vars, step)
			st.stdin, st.fr = stdin, newFrameReader(stdout, sync)
			err = sess.Start(cmd)
		}
	}
	if err != nil {
		l.endSession(sess)
		return nil, r.lost(err)
	}
	return st, nil
}

// follow attaches to the execution's spool and streams it from the
// delivered offsets until the job ends. found is false when no launched
// spool exists.
func (r *remoteRun) follow(ctx context.Context, l *lease) (res executors.Result, found bool, err error) {
	vars := append(spoolVars(r.e.opts, r.tag), [2]string{"o", fmt.Sprint(r.t.stdout)}, [2]string{"e", fmt.Sprint(r.t.stderr)})
	st, err := r.startStep(l, "follow", vars)
	if err != nil {
		return r.res, false, err
	}
	defer l.endSession(st.sess)
	first, err := st.fr.next()
	switch {
	case err != nil:
		return r.res, false, r.helperFailed(st, err)
	case first.kind == 'N':
		return r.res, false, nil
	case first.kind == 'F':
		return r.res, true, fmt.Errorf("%w: %s: %s", executors.ErrNotResumable, r.t.srv.Label(), first.args[0])
	}
	return r.attached(ctx, st, first)
}

// attached streams a job whose spool st's step attached to (first is its
// A frame) until the job ends. After the result is read it tells the
// server to remove the spool, unless the spec asks to keep it
// (KeepFinished).
func (r *remoteRun) attached(ctx context.Context, st *stepSession, first frame) (res executors.Result, found bool, err error) {
	if first.kind != 'A' || len(first.args) != 2 {
		return r.res, true, fmt.Errorf("%w: %s: unexpected first frame%s", ErrRemote, r.t.srv.Label(), st.diag.suffix())
	}
	elapsed, _ := strconv.Atoi(first.args[1])
	elapsed = max(elapsed, 0) // a server clock that stepped back
	r.res.Timings.SetupCompleted = time.Now()
	r.res.Timings.ExecStarted = time.Now().Add(-time.Duration(elapsed) * time.Second)
	ctl := startControl(ctx, st.sess, st.stdin, r.backstop(), r.e.opts.StopGrace+stopSlack)
	defer ctl.close()
	x, err := r.stream(st.fr)
	if err != nil {
		return r.interrupted(ctx, st.sess, err)
	}
	r.finish(x)
	if r.spec.KeepFinished {
		// The spool stays, result and all, for the caller's Abandon once
		// the result is kept: a process killed before that follows it
		// again. Closing the session ends the follow step on the server.
		_ = st.sess.Close()
		return r.res, true, nil
	}
	r.cleanup(ctl, st.sess)
	return r.res, true, nil
}

// helperFailed answers a step that ended before its first frame. If the
// helper itself exited (no /bin/sh, fork failures) its stderr says why;
// the error stays retryable, since the job may be running.
func (r *remoteRun) helperFailed(st *stepSession, err error) error {
	if werr := exitOf(st.sess); errors.As(werr, new(*ssh.ExitError)) {
		return executors.Retryable(fmt.Errorf("%w: %s: the follow step failed: %v%s",
			ErrRemote, r.t.srv.Label(), werr, st.diag.suffix()))
	}
	return r.lost(err)
}

// exitOf waits a moment for the end of a step whose output ended: an
// *ssh.ExitError says the remote helper itself failed, nil (also when the
// step did not end in time) points at the connection.
func exitOf(sess *ssh.Session) error {
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err := <-waited:
		return err
	case <-time.After(time.Second):
		return nil
	}
}

// backstop fires when the remote watchdog should long have stopped a job
// that timed out (someone killed it, the server's clock jumped); then we
// stop the job ourselves. nil when the job has no timeout.
func (r *remoteRun) backstop() <-chan time.Time {
	if r.spec.Timeout <= 0 {
		return nil
	}
	return time.After(max(0, time.Until(r.res.Timings.ExecStarted.Add(r.spec.Timeout+r.e.opts.StopGrace+stopSlack))))
}

// stream writes O and E payloads to the job's writers until the X frame.
func (r *remoteRun) stream(fr *frameReader) (frame, error) {
	for {
		f, err := fr.next()
		if err != nil {
			return f, err
		}
		switch f.kind {
		case 'O':
			_, err = fr.payload(r.stdout, f.n)
		case 'E':
			_, err = fr.payload(r.stderr, f.n)
		case 'H':
		case 'X':
			if len(f.args) < 2 {
				return f, fmt.Errorf("%w: bad end frame", ErrRemote)
			}
			return f, nil
		case 'F':
			return f, fmt.Errorf("%w: %w: %s", executors.ErrNotResumable, ErrRemote, f.args[0])
		default:
			return f, fmt.Errorf("%w: unexpected frame %q", ErrRemote, string(f.kind))
		}
		if err != nil {
			return f, err
		}
	}
}

func (r *remoteRun) finish(x frame) {
	r.res.Timings.ExecCompleted = time.Now()
	code, err := strconv.Atoi(x.args[0])
	if err != nil {
		r.res.Reason = "the server reported no exit status"
		return
	}
	t := r.res.Timings
	r.res = resultFromStatus(code, x.args[1], r.spec.Timeout)
	r.res.Timings = t
	r.res.Cost = parseCost(x.args[2:])
}

// cleanup tells the server the result arrived, so that it removes the
// spool, and waits for it. If that fails the spool is removed through a
// new session; the result stands either way.
func (r *remoteRun) cleanup(ctl *control, sess *ssh.Session) {
	r.res.Timings.CleanupStarted = time.Now()
	ok := ctl.send("done") == nil
	if ok {
		waited := make(chan error, 1)
		go func() { waited <- sess.Wait() }()
		select {
		case err := <-waited:
			ok = err == nil
		case <-time.After(r.e.opts.HandshakeTimeout):
			ok = false
			_ = sess.Close()
			<-waited
		}
	}
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), r.e.opts.DialTimeout+r.e.opts.HandshakeTimeout+r.e.opts.StopGrace)
		defer cancel()
		if err := r.abandon(ctx, sess); err != nil {
			r.log.Warn("ssh: could not remove the job's spool on the server", "err", err)
		}
	}
	r.res.Timings.CleanupCompleted = time.Now()
}

// interrupted answers a follow session that ended before the job did.
func (r *remoteRun) interrupted(ctx context.Context, sess *ssh.Session, err error) (executors.Result, bool, error) {
	if errors.Is(err, ErrRemote) {
		return r.res, true, fmt.Errorf("ssh: %s: %w", r.t.srv.Label(), err)
	}
	if ctx.Err() == nil {
		return r.res, true, r.lost(err)
	}
	cause := context.Cause(ctx)
	if errors.Is(cause, executors.ErrDetached) {
		return r.res, true, r.detached(cause)
	}
	// Cancelled, but the stop could not be confirmed over this session:
	// stop and remove the job over another one.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx),
		r.e.opts.DialTimeout+r.e.opts.HandshakeTimeout+r.e.opts.StopGrace+stopSlack)
	defer cancel()
	if aerr := r.abandon(actx, sess); aerr != nil {
		return r.res, true, fmt.Errorf("ssh: cancelling execution %s on %s failed; it may still run: %w",
			r.t.executionID, r.t.srv.Label(), aerr)
	}
	r.res.Cancelled = true
	r.res.Reason = "cancelled"
	r.res.Timings.ExecCompleted = time.Now()
	return r.res, true, nil
}

// abandon stops and removes this run's job after its follow session
// failed. It opens the abandon session under the run's own slot while the
// connection answers: giving the slot back to wait for another could queue
// behind other jobs, with every slot busy, until ctx ends.
func (r *remoteRun) abandon(ctx context.Context, sess *ssh.Session) error {
	_ = sess.Close()
	if r.l.check() {
		err := r.e.abandonOver(ctx, r.l, r.t.srv, r.tag)
		if !errors.Is(err, ErrConnLost) {
			return err
		}
	}
	r.l.release()
	return r.e.abandonServer(ctx, r.t.srv, r.tag)
}

// control owns the follow session's stdin: it asks the server to stop the
// job when ctx is cancelled or the timeout backstop fires, closes the
// session when ctx is cancelled with ErrDetached (the job keeps running),
// and sends "done" once the result is in.
type control struct {
	mu    sync.Mutex
	stdin io.WriteCloser
	quit  chan struct{}
	wg    sync.WaitGroup
}

func startControl(ctx context.Context, sess *ssh.Session, stdin io.WriteCloser, backstop <-chan time.Time, confirm time.Duration) *control {
	c := &control{stdin: stdin, quit: make(chan struct{})}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		select {
		case <-c.quit:
			return
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), executors.ErrDetached) {
				_ = sess.Close()
				return
			}
			_ = c.send("stop cancelled")
		case <-backstop:
			_ = c.send("stop timeout")
		}
		t := time.NewTimer(confirm)
		defer t.Stop()
		select {
		case <-c.quit:
		case <-t.C:
			_ = sess.Close()
		}
	}()
	return c
}

func (c *control) send(cmd string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := io.WriteString(c.stdin, cmd+"\n")
	return err
}

func (c *control) close() {
	close(c.quit)
	c.wg.Wait()
}
