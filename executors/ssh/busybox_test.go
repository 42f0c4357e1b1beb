package ssh

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
)

// A server whose tools are BusyBox's (Alpine's, a router's) runs the
// steps too. BusyBox's head -c reads all that the pipe holds, not just its
// count: the run step must launch and stream the job all the same. The
// steps run here through the local /bin/sh with BusyBox's head first in
// PATH: they are the server's part of the protocol, and no sshd changes
// what they read.
func TestRunStepWithBusyBoxHead(t *testing.T) {
	t.Parallel()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		testenv.Unavailable(t, "busybox: %v", err)
	}
	bin := t.TempDir()
	if err := os.Symlink(bb, filepath.Join(bin, "head")); err != nil {
		t.Fatal(err)
	}
	path := "PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")
	out, errOut, diag := runStepLocally(t, path, `echo "$GREETING from the script"; echo oops >&2`)
	if out != "hi from the script\n" || errOut != "oops\n" {
		t.Fatalf("stdout %q, stderr %q", out, errOut)
	}
	if strings.Contains(diag, "hi") {
		t.Fatalf("the environment reached the step's stderr: %q", diag)
	}
}

// A login umask that masks the owner's own bits (the spool could not be
// written, or the file keeping the umask not read back) still runs the
// job, under that umask. Through the real sshd: its user is not root, for
// whom no permission bit counts.
func TestRunStepWithAnOwnerMaskingUmask(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	for _, um := range []string{"0277", "0477"} {
		spec := bashSpec(t, "umask", keyServer(s))
		r := &remoteRun{e: e, spec: spec, tag: spoolTag(spec.JobID, spec.ExecutionID),
			t: &target{executionID: spec.ExecutionID, jobExecutionID: spec.ExecutionID}}
		bundle, vars := r.bundle()
		cmd, sync := remoteCommand(vars, "run")
		l, err := e.pool.acquire(t.Context(), keyServer(s), false)
		if err != nil {
			t.Fatal(err)
		}
		sess, err := l.newSession()
		if err != nil {
			t.Fatal(err)
		}
		var diag testenv.SyncBuffer
		sess.Stderr = &diag
		stdin, _ := sess.StdinPipe()
		stdout, _ := sess.StdoutPipe()
		if err := sess.Start("umask " + um + "; " + cmd); err != nil {
			t.Fatal(err)
		}
		out, _ := driveRunStep(t, stdin, stdout, bundle, sync, diag.String)
		_ = sess.Wait()
		l.endSession(sess)
		l.release()
		if out != um+"\n" {
			t.Fatalf("login umask %s: the job's is %q", um, out)
		}
		assertNoSpool(t, s, spec)
	}
}

// runStepLocally runs a job's run step through the local /bin/sh with env
// added to its environment, and returns the job's stdout and stderr and
// the step's own stderr, once the step ended and removed its spool. The
// job has GREETING=hi in its environment.
func runStepLocally(t *testing.T, env, script string) (stdout, stderr, diag string) {
	t.Helper()
	base := t.TempDir()
	opts, err := Options{RemoteSpoolDir: base, OrchestratorID: "orch-local"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	spec := executors.Spec{JobID: "job-local", ExecutionID: "exec-local", Env: map[string]string{"GREETING": "hi"},
		Script: &executors.Script{Language: executors.Bash, Content: script}}
	r := &remoteRun{e: &Executor{opts: opts}, spec: spec, tag: spoolTag(spec.JobID, spec.ExecutionID),
		t: &target{executionID: spec.ExecutionID, jobExecutionID: spec.ExecutionID}}
	bundle, vars := r.bundle()
	cmd, sync := remoteCommand(vars, "run")

	// A step stuck on its upload would block the reads below: end it.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Env = append(os.Environ(), env)
	var diagBuf testenv.SyncBuffer
	c.Stderr = &diagBuf
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdoutPipe, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
	stdout, stderr = driveRunStep(t, stdin, stdoutPipe, bundle, sync, diagBuf.String)
	if err := c.Wait(); err != nil {
		t.Fatalf("the step: %v; stderr %q", err, diagBuf.String())
	}
	testenv.Eventually(t, 30*time.Second, "the spool to be removed", func() bool {
		left, _ := filepath.Glob(filepath.Join(base, "cronium-*"))
		return len(left) == 0
	})
	return stdout, stderr, diagBuf.String()
}

// driveRunStep is the client's side of a run step: it sends the upload,
// reads the frames to the end one, which must say exit 0, and tells the
// step it is done. diag is the step's stderr so far, for failures.
func driveRunStep(t *testing.T, stdin io.WriteCloser, stdout io.Reader, bundle []byte, sync string,
	diag func() string) (string, string) {
	t.Helper()
	if _, err := stdin.Write(bundle); err != nil { // stdin stays open: the step's control channel
		t.Fatal(err)
	}
	fr := newFrameReader(stdout, sync)
	var out, errOut bytes.Buffer
	var kinds []string
	for {
		f, err := fr.next()
		if err != nil {
			t.Fatalf("frames %v, then %v; stderr %q", kinds, err, diag())
		}
		kinds = append(kinds, string(f.kind))
		switch f.kind {
		case 'O':
			_, err = fr.payload(&out, f.n)
		case 'E':
			_, err = fr.payload(&errOut, f.n)
		case 'F':
			t.Fatalf("the step failed: %v; stderr %q", f.args, diag())
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.kind == 'X' {
			if len(f.args) < 2 || f.args[0] != "0" || f.args[1] != "exit" {
				t.Fatalf("end frame %v", f.args)
			}
			break
		}
	}
	if kinds[0] != "S" || kinds[1] != "A" {
		t.Fatalf("frames %v", kinds)
	}
	if _, err := stdin.Write([]byte("done\n")); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	return out.String(), errOut.String()
}
