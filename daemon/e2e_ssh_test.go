package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/secret"
)

// End to end over SSH: real OpenSSH sshd (internal/testenv), the daemon
// with its real SSH executor, the embedded backend over HTTP.

func sshStack(t *testing.T, servers []*testenv.SSHD, opts ...stackOption) *stack {
	t.Helper()
	var lines []string
	for _, s := range servers {
		lines = append(lines, s.KnownHostsLine())
	}
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(c *config.Config) {
		c.Docker.Enabled = false
		c.SSH.KnownHosts = known
		// The default keepalive window (30s): none of these tests is about
		// a frozen peer, and a short window declares a live connection on
		// a loaded machine dead. A killed sshd closes the socket, which is
		// noticed at once.
		//
		// A resumed run keeps reconnecting for long enough to wait out a
		// slow sshd restart; a test about giving up sets a short one.
		c.SSH.ReconnectBackoffMax = 30 * time.Second
		c.Jobs.StopGrace = time.Second
	}
	store, url, token := daemontest.Backend(t)
	s := &stack{t: t, store: store, url: url, token: token}
	s.start(nil, append([]stackOption{base}, opts...)...)
	return s
}

func sshJob(content string, servers ...*testenv.SSHD) embedded.SubmitRequest {
	r := embedded.SubmitRequest{Script: &backend.Script{Type: "BASH", Content: content}, Timeout: "60s"}
	for i, s := range servers {
		r.Servers = append(r.Servers, embedded.ServerSpec{Name: "srv" + itoa(i+1), Host: s.Host, Port: s.Port,
			Username: s.User, PrivateKey: secret.Value(s.Key)})
	}
	return r
}

func TestSSHJobEndToEnd(t *testing.T) {
	srv := testenv.StartSSHD(t, 0)
	s := sshStack(t, []*testenv.SSHD{srv})
	v := s.wait(s.submit(sshJob(`echo "on $(whoami) in $PWD"; echo oops >&2; exit 3`, srv)), testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "failed" || *v.Result.ExitCode != 3 || v.Output.Stdout != "on cronium in /home/cronium\n" ||
		!strings.HasPrefix(v.Output.Stderr, "oops\n") {
		t.Fatalf("%s %v %q %q", v.Status, v.Result.ExitCode, v.Output.Stdout, v.Output.Stderr)
	}
	if len(v.Executions) != 1 || v.Executions[0].ServerName != "srv1" {
		t.Fatalf("executions %+v", v.Executions)
	}
}

// sshd killed mid-job: the connection drops, the JobActor tells the
// supervisor, whose restart budget lets it resume; it reconnects once sshd
// is back and resumes the same remote run. Every line once, one terminal
// update, the job ran once.
func TestSSHDroppedConnectionResumesThroughTheSupervisor(t *testing.T) {
	srv := testenv.StartSSHD(t, 0)
	s := sshStack(t, []*testenv.SSHD{srv})
	script := `echo run >> /tmp/runs-$CRONIUM_JOB_ID; for i in $(seq 1 30); do echo "line $i"; sleep 0.1; done`
	id := s.submit(sshJob(script, srv))
	testenv.Eventually(t, testenv.Patience, "output to flow", func() bool {
		o, _ := s.store.Output(t.Context(), id)
		return strings.Count(o.Stdout, "\n") >= 5
	})
	if err := srv.KillSSHD(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, testenv.Patience, "the supervisor to hear of the interruption", func() bool {
		for _, r := range s.tree(t).Restarts {
			if r.JobID == id && strings.HasPrefix(r.Reason, "execution interrupted: ") {
				return true
			}
		}
		return false
	})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	v := s.wait(id, testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "completed" || v.Output.Stdout != lines(30) {
		t.Fatalf("%s %q %q", v.Status, v.Output.Stdout, v.Output.Stderr)
	}
	if runs, err := srv.Exec("cat /tmp/runs-" + id); err != nil || runs != "run\n" {
		t.Fatalf("the job ran %q times (%v)", runs, err)
	}
}

// A server that stays away: restarts are spent, the job ends failed with
// the reason, once.
func TestSSHUnreachableBeyondTheBudgetFailsTheJob(t *testing.T) {
	srv := testenv.StartSSHD(t, 0)
	s := sshStack(t, []*testenv.SSHD{srv}, func(c *config.Config) {
		c.Supervisor.MaxRestarts = 2
		c.SSH.ReconnectBackoffMax = 500 * time.Millisecond
	})
	id := s.submit(sshJob(`echo started; sleep 30`, srv))
	testenv.Eventually(t, testenv.Patience, "job started", func() bool {
		o, _ := s.store.Output(t.Context(), id)
		return o.Stdout == "started\n"
	})
	if err := srv.KillSSHD(); err != nil {
		t.Fatal(err)
	}
	v := s.wait(id, testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "failed" || !strings.Contains(v.Output.Stderr, "gave up after 3 restarts") {
		t.Fatalf("%s %q", v.Status, v.Output.Stderr)
	}
}

func TestSSHMultiServerPartialFailure(t *testing.T) {
	good, bad := testenv.StartSSHD(t, 0), testenv.StartSSHD(t, 0)
	if _, err := bad.Exec("touch /tmp/fail"); err != nil {
		t.Fatal(err)
	}
	s := sshStack(t, []*testenv.SSHD{good, bad})
	script := `if [ -e /tmp/fail ]; then echo failing >&2; exit 4; fi; echo fine`
	v := s.wait(s.submit(sshJob(script, good, bad)), testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "completed" || *v.Result.ExitCode != 101 || v.Result.Status != embedded.StatusPartial {
		t.Fatalf("%s %v %s: %q", v.Status, v.Result.ExitCode, v.Result.Status, v.Output.Stderr)
	}
	if !strings.Contains(v.Output.Stdout, "[srv1] fine") || !strings.Contains(v.Output.Stderr, "[srv2] failing") {
		t.Fatalf("prefixed output: %q / %q", v.Output.Stdout, v.Output.Stderr)
	}
	if len(v.Executions) != 2 {
		t.Fatalf("want one execution record per server, got %+v", v.Executions)
	}
	exits, outs := map[string]int{}, map[string]string{}
	for _, e := range v.Executions {
		if e.ExitCode != nil {
			exits[e.ServerName] = *e.ExitCode
		}
		outs[e.ServerName] = e.Output + "|" + e.Error
	}
	if exits["srv1"] != 0 || exits["srv2"] != 4 {
		t.Fatalf("per-server exit codes %v", exits)
	}
	// Each server's record holds its own output, unprefixed.
	if outs["srv1"] != "fine\n|" || !strings.HasPrefix(outs["srv2"], "|failing\n") {
		t.Fatalf("per-server output %q", outs)
	}
}
