package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cronium/orchestrator/executors"
)

// runStep runs a short remote step (abandon, dangling, sweep) over l, with
// stdin as its input (nil for none), and returns the frames it printed
// before its final D. Cancelling ctx closes the session. A session that
// cannot be opened is ErrConnLost; a step that fails or ends without D is
// ErrRemote, returned with the frames read until then.
func runStep(ctx context.Context, l *lease, srv executors.Server, vars [][2]string, step string,
	stdin io.Reader) ([]frame, error) {
	sess, err := l.newSession()
	if err != nil {
		return nil, errorf(ErrConnLost, "ssh: %s: %v", srv.Label(), err)
	}
	defer l.endSession(sess)
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return nil, errorf(ErrConnLost, "ssh: %s: %v", srv.Label(), err)
	}
	var diag limitedBuffer
	sess.Stdin, sess.Stderr = stdin, &diag
	cmd, sync := remoteCommand(vars, step)
	if err := sess.Start(cmd); err != nil {
		return nil, errorf(ErrConnLost, "ssh: %s: %v", srv.Label(), err)
	}
	defer context.AfterFunc(ctx, func() { _ = sess.Close() })()
	frames, ferr := readStep(newFrameReader(stdout, sync))
	if ferr != nil {
		// What follows a bad frame is not worth reading, nor waiting for.
		_ = sess.Close()
	}
	werr := sess.Wait()
	if ctx.Err() != nil {
		return frames, fmt.Errorf("ssh: %s on %s: %w", step, srv.Label(), context.Cause(ctx))
	}
	if ferr == nil {
		return frames, nil
	}
	cause := werr
	if cause == nil || !errors.Is(ferr, io.EOF) {
		cause = fmt.Errorf("no confirmation (%v)", ferr)
	}
	return frames, fmt.Errorf("%w: %s on %s: %v%s", ErrRemote, step, srv.Label(), cause, diag.suffix())
}

// readStep reads a short step's frames up to its D; an F frame is its
// failure. Those steps send no payloads. On failure it returns the frames
// read before.
func readStep(fr *frameReader) ([]frame, error) {
	var frames []frame
	for {
		f, err := fr.next()
		switch {
		case err != nil:
			return frames, err
		case f.kind == 'D':
			return frames, nil
		case f.kind == 'F':
			return frames, errors.New(f.args[0])
		case f.kind == 'O' || f.kind == 'E':
			return frames, fmt.Errorf("unexpected %c frame", f.kind)
		}
		frames = append(frames, f)
	}
}
