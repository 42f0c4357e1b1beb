package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
)

// The variables CLI against an embedded backend over HTTP: what it sets
// is what a job's helpers read through the internal route, per user.
func TestVariablesCLI(t *testing.T) {
	store, server, _ := daemontest.Backend(t)
	run := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		if stdin == "" {
			return cli(t, nil, append([]string{"variables"}, args...)...)
		}
		cmd := exec.Command(binary, append([]string{"variables"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		var ee *exec.ExitError
		if err := cmd.Run(); err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return o.String(), e.String(), cmd.ProcessState.ExitCode()
	}
	steps := []struct {
		stdin        string
		args         []string
		code         int
		stdout, errs string // errs: a substring of stderr
	}{
		{args: []string{"set", "--server", server, "--user", "alice", "RUNS", "1"}},
		{args: []string{"get", "--server", server, "--user", "alice", "RUNS"}, stdout: "1\n"},
		{args: []string{"set", "--server", server, "--user", "alice", "TOKEN", "-"}, stdin: "s3cret\n"},
		{args: []string{"set", "--server", server, "--user", "alice", "NOTE", "two\nlines"}},
		{args: []string{"list", "--server", server, "--user", "alice"},
			stdout: "NOTE=\"two\\nlines\"\nRUNS=1\nTOKEN=s3cret\n"},
		// Another user, and the default one, see none of alice's.
		{args: []string{"get", "--server", server, "--user", "bob", "RUNS"}, code: 1, errs: "RUNS is not set for user bob"},
		{args: []string{"list", "--server", server}, stdout: ""},
		{args: []string{"set", "--server", server, "RUNS", "7"}},
		{args: []string{"get", "--server", server, "RUNS"}, stdout: "7\n"},
		{args: []string{"get", "--server", server}, code: 2, errs: "want 1 argument"},
		{args: []string{"rm", "--server", server, "RUNS"}, code: 2, errs: `unknown subcommand "rm"`},
	}
	for _, s := range steps {
		out, errOut, code := run(s.stdin, s.args...)
		if code != s.code || out != s.stdout || !strings.Contains(errOut, s.errs) {
			t.Fatalf("variables %q: exit %d stdout %q stderr %q; want %d, %q, %q",
				s.args, code, out, errOut, s.code, s.stdout, s.errs)
		}
	}
	for user, want := range map[string]string{"alice": "1", embedded.DefaultUserID: "7"} {
		if v, err := store.Variable(t.Context(), user, "RUNS"); err != nil || v.Value != want {
			t.Fatalf("%s's RUNS in the store: %+v, %v; want %q", user, v, err, want)
		}
	}
}

// submit --user names the job's user (the default is the standalone
// user); --follow shows the script's output and condition on stderr once
// the job ends, leaving stdout the job's own.
func TestSubmitUserAndFollowShowsScriptResult(t *testing.T) {
	store, server, token := daemontest.Backend(t)
	script := filepath.Join(t.TempDir(), "job.sh")
	os.WriteFile(script, []byte("echo hi\n"), 0o644)

	out, errOut, code := cli(t, nil, "submit", "--server", server, "--user", "bob", script)
	if code != 0 {
		t.Fatalf("submit: exit %d, %q", code, errOut)
	}
	if v, err := store.Job(t.Context(), strings.TrimSpace(out)); err != nil || v.UserID != "bob" {
		t.Fatalf("job's user: %q, %v", v.UserID, err)
	}
	orch, err := backend.New(backend.Options{BaseURL: server, Token: token, OrchestratorID: "o1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := orch.PollJobs(t.Context(), 10); err != nil { // out of the way
		t.Fatal(err)
	}

	type result struct {
		out, errs string
		code      int
	}
	done := make(chan result, 1)
	go func() {
		cmd := exec.Command(binary, "submit", "--server", server, "--follow", script)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		_ = cmd.Run()
		done <- result{o.String(), e.String(), cmd.ProcessState.ExitCode()}
	}()
	// Play the orchestrator: claim the job, end it with what its script
	// set through the helpers.
	var job backend.Job
	testenv.Eventually(t, testenv.Patience, "the followed job to be submitted", func() bool {
		jobs, err := orch.PollJobs(t.Context(), 1)
		if err != nil || len(jobs) == 0 {
			return false
		}
		job = jobs[0]
		return true
	})
	if job.Metadata.UserID != embedded.DefaultUserID {
		t.Fatalf("metadata.userId %q, want %q", job.Metadata.UserID, embedded.DefaultUserID)
	}
	yes := true
	if err := orch.CompleteJob(t.Context(), job.ID, backend.Completion{Status: backend.StatusCompleted,
		Output: backend.CompletionOutput{Stdout: "hi\n"}, ScriptOutput: []byte(`{ "runs": 1 }`), Condition: &yes}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.code != 0 || r.out != "hi\n" || !strings.Contains(r.errs, "script output: {\"runs\":1}\ncondition: true\n") {
			t.Fatalf("exit %d stdout %q stderr %q", r.code, r.out, r.errs)
		}
	case <-time.After(testenv.Patience):
		t.Fatal("submit --follow did not end with the job")
	}
}
