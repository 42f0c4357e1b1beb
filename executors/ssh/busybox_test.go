package ssh

import (
	"bytes"
	"context"
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
	bin, base := t.TempDir(), t.TempDir()
	if err := os.Symlink(bb, filepath.Join(bin, "head")); err != nil {
		t.Fatal(err)
	}
	opts, err := Options{RemoteSpoolDir: base, OrchestratorID: "orch-bb"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	spec := executors.Spec{JobID: "job-bb", ExecutionID: "exec-bb", Env: map[string]string{"GREETING": "hi"},
		Script: &executors.Script{Language: executors.Bash, Content: `echo "$GREETING from the script"; echo oops >&2`}}
	r := &remoteRun{e: &Executor{opts: opts}, spec: spec, tag: spoolTag(spec.JobID, spec.ExecutionID),
		t: &target{executionID: spec.ExecutionID, jobExecutionID: spec.ExecutionID}}
	bundle, vars := r.bundle()
	cmd, sync := remoteCommand(vars, "run")

	// A step stuck on its upload would block the reads below: end it.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	var diag bytes.Buffer
	c.Stderr = &diag
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	if _, err := stdin.Write(bundle); err != nil { // stdin stays open: the step's control channel
		t.Fatal(err)
	}

	fr := newFrameReader(stdout, sync)
	var out, errOut bytes.Buffer
	var kinds []string
	for {
		f, err := fr.next()
		if err != nil {
			t.Fatalf("frames %v, then %v; stderr %q", kinds, err, diag.String())
		}
		kinds = append(kinds, string(f.kind))
		switch f.kind {
		case 'O':
			_, err = fr.payload(&out, f.n)
		case 'E':
			_, err = fr.payload(&errOut, f.n)
		case 'F':
			t.Fatalf("the step failed: %v; stderr %q", f.args, diag.String())
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
	if kinds[0] != "S" || kinds[1] != "A" || out.String() != "hi from the script\n" || errOut.String() != "oops\n" {
		t.Fatalf("frames %v, stdout %q, stderr %q", kinds, out.String(), errOut.String())
	}
	if _, err := stdin.Write([]byte("done\n")); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	if err := c.Wait(); err != nil {
		t.Fatalf("the step: %v; stderr %q", err, diag.String())
	}
	testenv.Eventually(t, 30*time.Second, "the spool to be removed", func() bool {
		left, _ := filepath.Glob(filepath.Join(base, "cronium-*"))
		return len(left) == 0
	})
	if strings.Contains(diag.String(), "hi") {
		t.Fatalf("the environment reached the step's stderr: %q", diag.String())
	}
}
