package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/testenv"
)

// serverLines are the lines of a multi-server job's output from one
// server, without its prefix.
func serverLines(out, name string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "["+name+"] "); ok {
			b.WriteString(rest)
		}
	}
	return b.String()
}

// TestKill9ResumesSSHJobs: the orchestrator is killed with SIGKILL ten
// times while a single-server and a multi-server SSH job run. Each job
// completes once, every server's output arrives whole and in order, and
// the script was launched once on each server.
func TestKill9ResumesSSHJobs(t *testing.T) {
	a, b := testenv.StartSSHD(t, 0), testenv.StartSSHD(t, 0)
	if _, err := b.Exec("echo '" + b.User + ":" + a.Password + "' | chpasswd"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, []byte(a.KnownHostsLine()+"\n"+b.KnownHostsLine()+"\n"), 0o600)
	data := t.TempDir()
	flags := []string{"--docker-enabled=false", "--ssh-known-hosts", known}
	sa, server, logs := startStandaloneIn(t, data, flags...)

	const lines = 100 // 20 s
	submit := func(marker string, servers ...*testenv.SSHD) string {
		script := filepath.Join(dir, marker+".sh")
		os.WriteFile(script, []byte("echo run >> /tmp/"+marker+"\n"+countedLines(lines)), 0o644)
		args := []string{"submit", "--server", server, "--ssh-password-env", "SSH_PW"}
		for _, s := range servers {
			args = append(args, "--ssh", s.User+"@"+s.Addr)
		}
		out, errOut, code := cli(t, []string{"SSH_PW=" + a.Password}, append(args, script)...)
		if code != 0 {
			t.Fatalf("submit: exit %d: %s", code, errOut)
		}
		return strings.TrimSpace(out)
	}
	single, multi := submit("single", a), submit("multi", a, b)
	running := func() bool {
		for _, id := range []string{single, multi} {
			if v, ok := getJob(server, id); !ok || v.Status != "running" || !strings.Contains(v.Output.Stdout, "line") {
				return false
			}
		}
		return true
	}
	for k := range 10 {
		testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("the jobs to run before kill %d", k+1), running)
		sa.Process.Signal(syscall.SIGKILL)
		sa.Wait()
		sa, server, logs = startStandaloneIn(t, data, flags...)
	}
	end := func(id string) embedded.JobView {
		var v embedded.JobView
		testenv.Eventually(t, 3*time.Minute, "job "+id+" to finish", func() bool {
			var ok bool
			v, ok = getJob(server, id)
			return ok && v.Output.Final
		})
		return v
	}
	want := wantLines(lines)
	if v := end(single); v.Status != "completed" || v.TerminalUpdates != 1 || v.Output.Stdout != want {
		t.Errorf("single: status %s, %d terminal updates, stdout %d bytes (want %d), stderr %q",
			v.Status, v.TerminalUpdates, len(v.Output.Stdout), len(want), v.Output.Stderr)
	}
	v := end(multi)
	if v.Status != "completed" || v.TerminalUpdates != 1 || len(v.Executions) != 2 {
		t.Errorf("multi: %d executions, status %s, %d terminal updates, stderr %q", len(v.Executions), v.Status, v.TerminalUpdates, v.Output.Stderr)
	}
	for _, e := range v.Executions {
		if got := serverLines(v.Output.Stdout, e.ServerName); got != want {
			t.Errorf("multi: server %s: %d bytes of its lines (want %d)", e.ServerName, len(got), len(want))
		}
	}
	for _, check := range []struct {
		s      *testenv.SSHD
		marker string
	}{{a, "single"}, {a, "multi"}, {b, "multi"}} {
		if runs, _ := check.s.Exec("cat /tmp/" + check.marker); runs != "run\n" {
			t.Errorf("%s on %s: launched %d times", check.marker, check.s.Addr, strings.Count(runs, "run"))
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs.String())
	}
}
