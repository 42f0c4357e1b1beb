package ssh

import (
	"strings"
	"testing"

	"github.com/cronium/orchestrator/executors"
)

// A run that keeps its finished spool (Spec.KeepFinished) leaves the result
// on the server: a process killed before it recorded the result resumes the
// execution and reads it again, output and exit code, without running the
// script twice. Abandon then removes the spool.
func TestKeepFinishedLeavesTheResultUntilAbandon(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	spec := bashSpec(t, `echo ran >>/tmp/keep-runs-$CRONIUM_EXECUTION_ID; echo out; echo err >&2; exit 3`, keyServer(s))
	runs := "/tmp/keep-runs-" + spec.ExecutionID
	t.Cleanup(func() { _, _ = s.Exec("rm -f " + runs) })
	spec.KeepFinished = true
	res, first, err := run(t, e, spec)
	if err != nil || res.ExitCode != 3 || first.stdout.String() != "out\n" || first.stderr.String() != "err\n" {
		t.Fatalf("first run: res=%+v err=%v stdout=%q stderr=%q", res, err, first.stdout.String(), first.stderr.String())
	}
	if out := remote(t, s, `ls -d /tmp/cronium-`+spoolTag(spec.JobID, spec.ExecutionID)+`.* 2>/dev/null || true`); strings.TrimSpace(out) == "" {
		t.Fatal("the finished spool was removed although the spec asked to keep it")
	}

	// A restarted process, knowing nothing, resumes from the start.
	again := newExecutor(t, testOptions(t, s))
	spec.Resume = executors.Resume{Resuming: true, Started: true}
	res, second, err := run(t, again, spec)
	if err != nil || res.ExitCode != 3 || second.stdout.String() != "out\n" || second.stderr.String() != "err\n" {
		t.Fatalf("resumed run: res=%+v err=%v stdout=%q stderr=%q", res, err, second.stdout.String(), second.stderr.String())
	}
	if got := remote(t, s, "cat "+runs); got != "ran\n" {
		t.Fatalf("the script ran %q times, want once", got)
	}
	if err := again.Abandon(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	assertNoSpool(t, s, spec)
}
