package ssh

import (
	"sort"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
)

func multiServers(s *testenv.SSHD, names ...string) []executors.Server {
	var out []executors.Server
	for _, n := range names {
		srv := keyServer(s)
		srv.ID, srv.Name = "id-"+n, n
		out = append(out, srv)
	}
	return out
}

// The same sshd plays every server; the script fails on the one whose
// execution id ends in -2.
const perServerScript = `echo "hello from $CRONIUM_EXECUTION_ID"
echo "warn $CRONIUM_EXECUTION_ID" >&2
case $CRONIUM_EXECUTION_ID in *-2) exit 4 ;; esac`

func TestMultiServerPartialFailure(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	spec := bashSpec(t, perServerScript, multiServers(s, "web1", "web2", "web3")...)
	res, c, err := run(t, e, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Exited || res.ExitCode != 1 || res.Succeeded() || !strings.Contains(res.Reason, "web2") {
		t.Fatalf("res = %+v", res)
	}
	lines := strings.Split(strings.TrimSpace(c.stdout.String()), "\n")
	sort.Strings(lines)
	want := []string{}
	for i, n := range []string{"web1", "web2", "web3"} {
		want = append(want, "["+n+"] hello from "+executors.ServerExecutionID(spec.ExecutionID, i))
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stdout:\n%s\nwant:\n%s", c.stdout.String(), strings.Join(want, "\n"))
	}
	if len(res.Servers) != 3 {
		t.Fatalf("servers = %+v", res.Servers)
	}
	for i, sr := range res.Servers {
		id := executors.ServerExecutionID(spec.ExecutionID, i)
		if sr.ExecutionID != id || sr.ServerID != "id-"+sr.ServerName || sr.Stdout != "hello from "+id+"\n" ||
			sr.Stderr != "warn "+id+"\n" || sr.Err != nil {
			t.Fatalf("server %d = %+v", i, sr)
		}
		if wantCode := map[bool]int{true: 4, false: 0}[i == 1]; sr.Result.ExitCode != wantCode {
			t.Fatalf("server %d exit %d, want %d", i, sr.Result.ExitCode, wantCode)
		}
	}
}

func TestMultiServerUnreachableCountsAsFailed(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	servers := multiServers(s, "ok", "dead")
	closed, _ := testenv.FreePort()
	servers[1].Port = closed
	res, c, err := run(t, e, bashSpec(t, "echo hi", servers...))
	if err != nil || res.ExitCode != 1 || res.Servers[1].Err == nil || res.Servers[0].Result.ExitCode != 0 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	if !strings.Contains(c.stderr.String(), "[dead] cronium: ") || !strings.Contains(c.stdout.String(), "[ok] hi\n") {
		t.Fatalf("stdout=%q stderr=%q", c.stdout.String(), c.stderr.String())
	}
}

func TestMultiServerResumeAfterDrop(t *testing.T) {
	t.Parallel()
	a := sharedSSHD(t)
	b := testenv.StartSSHD(t, 0)
	opts := testOptions(t, a)
	writeKnownHosts(t, opts.KnownHosts, a.KnownHostsLine()+"\n"+b.KnownHostsLine())
	e := newExecutor(t, opts)
	servers := append(multiServers(a, "steady"), multiServers(b, "flaky")...)
	servers[1] = keyServer(b)
	servers[1].Name = "flaky"
	spec := bashSpec(t, `for i in $(seq 1 15); do echo "line $i"; sleep 0.1; done`, servers...)
	var first capture
	_, err := runUntilLost(t, e, spec, &first, "[flaky] line 4\n", func() { _ = b.KillSSHD() })
	if !executors.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	spec.Resume = executors.Resume{Resuming: true, StdoutBytes: first.stdout.Len(), StderrBytes: first.stderr.Len()}
	res, second, err := run(t, e, spec)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	all := first.stdout.String() + second.stdout.String()
	for _, name := range []string{"steady", "flaky"} {
		var got strings.Builder
		for _, l := range strings.SplitAfter(all, "\n") {
			if rest, ok := strings.CutPrefix(l, "["+name+"] "); ok {
				got.WriteString(rest)
			}
		}
		assertLines(t, got.String(), "line", 15)
	}
}
