package ssh

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/orchestrator/executors"
)

// target is one server's part of an execution.
type target struct {
	srv         executors.Server
	executionID string // names the spool on the server
	// jobExecutionID is the execution id the job knows, which executionID
	// extends per server for a multi-server job: the spool's owner file
	// names it (see reconcile.go).
	jobExecutionID string
	resume         executors.Resume
	// stdout and stderr count the bytes delivered so far, starting from
	// the resume offsets: the offsets a later Run resumes from.
	stdout, stderr int64
}

// remoteRun is one Run of one target.
type remoteRun struct {
	e    *Executor
	spec executors.Spec
	t    *target
	tag  string
	log  *slog.Logger
	l    *lease

	stdout, stderr io.Writer
	started        func() // reports the launch (Output.Started)
	res            executors.Result
}

// runTarget runs, or resumes, t and returns its result.
func (e *Executor) runTarget(ctx context.Context, spec executors.Spec, t *target, out executors.Output) (res executors.Result, err error) {
	defer func() {
		if err == nil || !executors.IsRetryable(err) && !errors.Is(err, executors.ErrDetached) {
			e.launched.Delete(t.executionID) // final: no Run follows
		}
	}()
	t.stdout, t.stderr = t.resume.StdoutBytes, t.resume.StderrBytes
	r := &remoteRun{
		e: e, spec: spec, t: t, tag: spoolTag(spec.JobID, t.executionID),
		log:     e.opts.Logger.With("execution_id", t.executionID, "server", t.srv.Label()),
		stdout:  &counter{w: orDiscard(out.Stdout), n: &t.stdout},
		stderr:  &counter{w: orDiscard(out.Stderr), n: &t.stderr},
		started: out.NotifyStarted,
	}
	r.res.Timings.SetupStarted = time.Now()
	if ctx.Err() != nil {
		return r.notStarted(ctx)
	}
	l, err := e.connect(ctx, t.srv, t.resume.Resuming, sessionsAtOnce(spec))
	if err != nil {
		return r.connectFailed(ctx, err)
	}
	defer l.release()
	r.l = l
	if t.resume.Resuming {
		stopRelay := r.startRelay(ctx)
		res, found, err := r.follow(ctx, l)
		stopRelay()
		if found || err != nil {
			return res, err
		}
		if _, ran := e.launched.Load(t.executionID); ran || t.resume.Started || t.stdout > 0 || t.stderr > 0 {
			// Nothing of it is left to follow but the fence the follow set.
			if err := e.abandonOver(ctx, l, t.srv, r.tag); err != nil {
				r.log.Warn("ssh: could not remove what is left of an execution that cannot be resumed", "err", err)
			}
			return res, fmt.Errorf("%w: execution %s ran on %s but its spool is gone (server rebooted, or the spool "+
				"was removed); it is not started again", executors.ErrNotResumable, t.executionID, t.srv.Label())
		}
		r.log.Info("ssh: resumed execution had not started on the server; starting it")
	}
	if ctx.Err() != nil {
		return r.notStarted(ctx)
	}
	return r.launch(ctx, l)
}

// sessionsAtOnce is how many sessions a Run of spec holds open at once (its
// steps run one after the other, the helpers relay beside the follow). The
// pool must count each: a connection full of jobs with helpers would
// otherwise open twice MaxSessionsPerConn sessions, and sshd refuses those
// beyond its MaxSessions.
func sessionsAtOnce(spec executors.Spec) int {
	if spec.Helpers != nil && spec.Script != nil {
		return 2
	}
	return 1
}

// notStarted answers a ctx that ended before anything ran.
func (r *remoteRun) notStarted(ctx context.Context) (executors.Result, error) {
	if cause := context.Cause(ctx); errors.Is(cause, executors.ErrDetached) {
		return r.res, r.detached(cause)
	}
	r.res.Cancelled = true
	r.res.Reason = "cancelled before it started"
	return r.res, nil
}

// detached is Run's error when ctx was cancelled with ErrDetached (cause).
func (r *remoteRun) detached(cause error) error {
	return fmt.Errorf("ssh: %s: %w", r.t.srv.Label(), cause)
}

// connectFailed answers a failed connect. A cancelled resumed run must not
// read as "cancelled before it started": the job may run out there.
func (r *remoteRun) connectFailed(ctx context.Context, err error) (executors.Result, error) {
	if ctx.Err() != nil && (!r.t.resume.Resuming || errors.Is(context.Cause(ctx), executors.ErrDetached)) {
		return r.notStarted(ctx)
	}
	if !r.t.resume.Resuming {
		return r.res, err
	}
	// A resumed run bypasses the breaker: only a server that is down, or
	// that closed the connection during authentication, is worth another
	// attempt (the restart budget bounds them).
	if worthReconnecting(err) && ctx.Err() == nil {
		return r.res, executors.Retryable(fmt.Errorf("ssh: reconnect to %s for execution %s: %w", r.t.srv.Label(), r.t.executionID, err))
	}
	return r.res, fmt.Errorf("ssh: cannot reach execution %s on %s again; it may still be running there: %w",
		r.t.executionID, r.t.srv.Label(), err)
}

// lost wraps a failure of the connection under a possibly running job.
func (r *remoteRun) lost(err error) error {
	r.l.check()
	return executors.Retryable(errorf(ErrConnLost, "ssh: connection to %s lost during execution %s: %v",
		r.t.srv.Label(), r.t.executionID, err))
}

// launch uploads the job, launches it detached and streams it, over one
// session (the run step: setup, then follow's stream). A failure after the
// upload began and before the server confirmed the launch is retryable: the
// job may have started, and a resumed run finds it (or finds that it did
// not).
func (r *remoteRun) launch(ctx context.Context, l *lease) (executors.Result, error) {
	bundle, vars := r.bundle()
	st, err := r.startStep(l, "run", vars)
	if err != nil {
		return r.res, err
	}
	defer l.endSession(st.sess)
	// A step that failed early stops reading: its frames say why, the
	// write's error would not.
	_, werr := st.stdin.Write(bundle)
	first, err := st.fr.next()
	if err := r.launched(st, first, err, werr); err != nil {
		return r.res, err
	}
	stopRelay := r.startRelay(ctx)
	defer stopRelay()
	next, err := st.fr.next()
	if err != nil {
		res, _, err := r.interrupted(ctx, st.sess, err)
		return res, err
	}
	res, _, err := r.attached(ctx, st, next)
	return res, err
}

// launched checks the run step's first frame (or the error reading it,
// and the upload's): the server's word that it launched the job.
func (r *remoteRun) launched(st *stepSession, fr frame, err, uploadErr error) error {
	switch {
	case err == nil && fr.kind == 'S':
		r.e.launched.Store(r.t.executionID, struct{}{})
		r.started()
		r.log.Debug("ssh: job launched", "spool", strings.Join(fr.args, " "))
		return nil
	case err == nil && fr.kind == 'F':
		return fmt.Errorf("%w: %s: %s%s", ErrRemote, r.t.srv.Label(), fr.args[0], st.diag.suffix())
	case err == nil:
		return fmt.Errorf("%w: %s: setup said %q%s", ErrRemote, r.t.srv.Label(), string(fr.kind), st.diag.suffix())
	case errors.Is(err, ErrRemote):
		return fmt.Errorf("ssh: %s: setup: %w%s", r.t.srv.Label(), err, st.diag.suffix())
	}
	if werr := exitOf(st.sess); errors.As(werr, new(*ssh.ExitError)) {
		// The helper ran and failed before launching (no /bin/sh, no
		// base64): retrying will not help.
		return fmt.Errorf("%w: %s: %v%s", ErrRemote, r.t.srv.Label(), werr, st.diag.suffix())
	}
	return r.lost(cmp.Or(uploadErr, err))
}

// uploadEnd is named by the unpack program's last line (see setup in
// remote.sh).
const uploadEnd = "cronium-upload-end"

// bundle is what setup reads from stdin, the unpack program; and setup's
// variables.
func (r *remoteRun) bundle() ([]byte, [][2]string) {
	sc := r.spec.Script
	name := "script" + sc.Language.FileExt()
	files := helperFiles(r.spec)
	unpack := unpackProgram(envFile(scriptEnv(r.spec)), files, name, sc.Content)
	vars := append(spoolVars(r.e.opts, r.tag), jobVars(sc.Language, sc.WorkDir, name, r.spec.Timeout)...)
	vars = append(vars, ownerVars(r.e.opts.OrchestratorID, r.t.jobExecutionID)...)
	vars = append(vars, uploadVars(len(unpack), files != nil)...)
	return unpack, vars
}

// uploadVars are setup's variables that describe its upload.
func uploadVars(nunpack int, helpers bool) [][2]string {
	h := "0"
	if helpers {
		h = "1"
	}
	return [][2]string{{"nunpack", strconv.Itoa(nunpack)}, {"helpers", h}, {"upload_end", uploadEnd}}
}

// unpackProgram is the sh program setup runs in the new spool ($d) to
// write the environment file (env), the helpers' files (h/NAME) and the
// script, one printf line each: a builtin, where decoding each file would
// start a process or two, a few milliseconds on a small server. printf '%s'
// writes the single-quoted word as it is, trailing newlines included; the
// files hold no NUL (validate and checkEnv; the helpers are text). Its
// last line names uploadEnd.
func unpackProgram(env []byte, files []executors.File, scriptName, script string) []byte {
	var b bytes.Buffer
	writeFile := func(name string, data string) {
		b.WriteString("printf '%s' " + shellQuote(data) + ` >"$d"/` + shellQuote(name) + " || exit 1\n")
	}
	writeFile("env", string(env))
	for _, f := range files {
		writeFile("h/"+f.Name, string(f.Data))
	}
	writeFile(scriptName, script)
	b.WriteString(": " + uploadEnd + "\n")
	return b.Bytes()
}

// scriptEnv is the job's environment plus PYTHONUNBUFFERED for Python,
// which otherwise buffers its output to the spool file until it exits.
func scriptEnv(spec executors.Spec) []executors.EnvVar {
	vars := spec.Environment()
	if spec.Script.Language == executors.Python && !slices.ContainsFunc(vars,
		func(v executors.EnvVar) bool { return v.Name == "PYTHONUNBUFFERED" }) {
		vars = append(vars, executors.EnvVar{Name: "PYTHONUNBUFFERED", Value: "1"})
	}
	return vars
}

func spoolVars(opts Options, tag string) [][2]string {
	return [][2]string{
		{"base", opts.RemoteSpoolDir},
		{"tag", tag},
		{"grace_ticks", strconv.Itoa(graceTicks(opts.StopGrace))},
	}
}

// counter counts the bytes that reached w.
type counter struct {
	w io.Writer
	n *int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// limitedBuffer keeps the first max bytes (4 KiB if max is 0) written to
// it: a short step's output, or the remote helper's own diagnostics, for
// error messages. x/crypto copies a session's stderr from its own
// goroutine, hence the lock.
type limitedBuffer struct {
	max int
	mu  sync.Mutex
	b   bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := cmp.Or(b.max, 4<<10) - b.b.Len(); room > 0 {
		b.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *limitedBuffer) suffix() string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return ""
	}
	return " (" + truncate(s, 300) + ")"
}
