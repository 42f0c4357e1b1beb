package ssh

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
)

// A login shell that prints something when it starts (an "echo" in
// ~/.bashrc) must not break setup, follow, resume or abandon.
func TestLoginShellNoise(t *testing.T) {
	t.Parallel()
	s := testenv.StartSSHD(t, 0)
	// Debian's bash reads ~/.bashrc for commands sshd runs; its stock
	// .bashrc returns early when not interactive, so the noise goes first.
	remote(t, s, `cd /home/cronium && for f in .bashrc .profile; do
	printf 'echo "noise from %s"\nprintf partial-line\n' $f | cat - $f >$f.new && mv $f.new $f && chown cronium: $f
done`)
	if out := rawOutput(t, s, "true"); !strings.Contains(out, "noise from .bashrc") {
		t.Fatalf("the login shell prints %q: the test would not exercise the noise", out)
	}
	e := newExecutor(t, testOptions(t, s))

	spec := bashSpec(t, "echo out; echo err >&2; exit 3", keyServer(s))
	res, c, err := run(t, e, spec)
	if err != nil || res.ExitCode != 3 || c.stdout.String() != "out\n" || c.stderr.String() != "err\n" {
		t.Fatalf("run: res=%+v err=%v stdout=%q stderr=%q", res, err, c.stdout.String(), c.stderr.String())
	}
	assertNoSpool(t, s, spec)

	spec = bashSpec(t, `for i in $(seq 1 10); do echo "line $i"; sleep 0.1; done`, keyServer(s))
	var first capture
	o := runUntil(t, e, spec, &first, func() bool { return strings.Contains(first.stdout.String(), "line 2\n") },
		func(cancel context.CancelCauseFunc) { cancel(executors.ErrDetached) })
	if !errors.Is(o.err, executors.ErrDetached) {
		t.Fatalf("detach: err = %v", o.err)
	}
	spec.Resume = executors.Resume{Resuming: true, StdoutBytes: first.stdout.Len()}
	res, second, err := run(t, e, spec)
	if err != nil || !res.Succeeded() {
		t.Fatalf("resume: res=%+v err=%v", res, err)
	}
	assertLines(t, first.stdout.String()+second.stdout.String(), "line", 10)
	assertNoSpool(t, s, spec)

	spec = bashSpec(t, "echo started; sleep 381", keyServer(s))
	var third capture
	o = runUntil(t, e, spec, &third, func() bool { return third.stdout.Len() > 0 },
		func(cancel context.CancelCauseFunc) { cancel(executors.ErrDetached) })
	if !errors.Is(o.err, executors.ErrDetached) {
		t.Fatalf("detach: err = %v", o.err)
	}
	if err := e.Abandon(t.Context(), spec); err != nil {
		t.Fatalf("abandon: %v", err)
	}
	assertNoJobProcess(t, s, "sleep 381")
	assertNoSpool(t, s, spec)
}

// rawOutput runs cmd in a plain session, as the job's user.
func rawOutput(t *testing.T, s *testenv.SSHD, cmd string) string {
	t.Helper()
	signer, err := xssh.ParsePrivateKey([]byte(s.Key))
	if err != nil {
		t.Fatal(err)
	}
	client, err := xssh.Dial("tcp", s.Addr, &xssh.ClientConfig{User: s.User,
		Auth: []xssh.AuthMethod{xssh.PublicKeys(signer)}, HostKeyCallback: xssh.FixedHostKey(s.HostKey)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.Output(cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(out)
}

// A setup that fails after it made the spool removes it: it holds the
// job's environment.
func TestSetupFailureRemovesSpool(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	const script = "echo never"
	for _, tc := range []struct {
		name, stdin, want string
		nscript           int
	}{
		{"corrupt environment", "%%% not base64 %%%\n\n" + script, "environment upload failed", len(script)},
		{"corrupt helpers", "ZXhwb3J0IEE9MQo=\n%%% not base64 %%%\n" + script, "helpers upload failed", len(script)},
		{"truncated script", "ZXhwb3J0IEE9MQo=\n\n" + script, "upload truncated", len(script) + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			spec := bashSpec(t, script, keyServer(s))
			l, err := e.pool.acquire(t.Context(), keyServer(s), false)
			if err != nil {
				t.Fatal(err)
			}
			defer l.release()
			sess, err := l.newSession()
			if err != nil {
				t.Fatal(err)
			}
			defer l.endSession(sess)
			vars := append(spoolVars(e.opts, spoolTag(spec.JobID, spec.ExecutionID)),
				jobVars(executors.Bash, "", "script.sh", 0)...)
			vars = append(vars, [2]string{"nscript", strconv.Itoa(tc.nscript)})
			sess.Stdin = strings.NewReader(tc.stdin)
			cmd, sync := remoteCommand(vars, "setup")
			out, _ := sess.Output(cmd) // exits 3
			f, err := newFrameReader(bytes.NewReader(out), sync).next()
			if err != nil || f.kind != 'F' || !strings.Contains(f.args[0], tc.want) {
				t.Fatalf("frame %q %v, err %v; output %q", f.kind, f.args, err, out)
			}
			assertNoSpool(t, s, spec)
		})
	}
}

func TestSpoolIsPrivate(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	// The job looks at its own spool: $0 is the script in it.
	spec := bashSpec(t, `d=$(dirname "$0"); stat -c '%a %U' "$d"; find "$d" -perm /077 | wc -l; basename "$d"`, keyServer(s))
	res, c, err := run(t, e, spec)
	want := regexp.MustCompile(`^700 cronium\n0\ncronium-` + regexp.QuoteMeta(spoolTag(spec.JobID, spec.ExecutionID)) + `\.[A-Za-z0-9]{6}\n$`)
	if err != nil || !res.Succeeded() || !want.MatchString(c.stdout.String()) {
		t.Fatalf("res=%+v err=%v stdout=%q stderr=%q", res, err, c.stdout.String(), c.stderr.String())
	}
	assertNoSpool(t, s, spec)
}

// The timeout holds while nobody follows the job: the watchdog on the
// server stops it, and the resumed run reads that it timed out.
func TestWatchdogEnforcesTimeoutWhileDisconnected(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	opts := testOptions(t, s)
	obs := &poolCounter{}
	opts.Observer = obs
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	spec := bashSpec(t, "echo started; sleep 391", keyServer(s))
	spec.Timeout = 2 * time.Second
	start := time.Now()
	var first capture
	o := runUntil(t, e, spec, &first, func() bool { return first.stdout.Len() > 0 },
		func(cancel context.CancelCauseFunc) { cancel(executors.ErrDetached) })
	if !errors.Is(o.err, executors.ErrDetached) {
		t.Fatalf("err = %v", o.err)
	}
	_ = e.Close()
	if conns, _ := obs.open(); conns != 0 {
		t.Fatalf("%d connections still open", conns)
	}
	// The job outlived the detach and the Close: it is running, or (on a
	// machine slow enough that its timeout came first) its watchdog has
	// stopped it, which only a job still running gets. A job that died
	// otherwise has its status and no "timeout" stop reason.
	testenv.Eventually(t, testenv.Patience, "the job to run on, or be stopped by its watchdog", func() bool {
		if strings.Contains(jobProcesses(t, s), "sleep 391") {
			return true
		}
		stopped, _ := s.Exec("cat /tmp/cronium-" + spoolTag(spec.JobID, spec.ExecutionID) + ".*/stopped 2>/dev/null")
		return strings.TrimSpace(stopped) == "timeout"
	})
	testenv.Eventually(t, spec.Timeout+opts.StopGrace+testenv.Patience, "the watchdog to stop the job", func() bool {
		return !strings.Contains(jobProcesses(t, s), "sleep 391")
	})
	if d := time.Since(start); d < spec.Timeout {
		t.Fatalf("stopped after %s, before the timeout", d)
	}
	opts.Observer = nil
	spec.Resume = executors.Resume{Resuming: true, StdoutBytes: first.stdout.Len(), StderrBytes: first.stderr.Len()}
	res, second, err := run(t, newExecutor(t, opts), spec)
	if err != nil || !res.TimedOut || res.Succeeded() || second.stdout.Len() != 0 {
		t.Fatalf("resumed: res=%+v err=%v stdout=%q", res, err, second.stdout.String())
	}
	assertNoSpool(t, s, spec)
}

// insecure-ignore is loud: once at New, and on every connection.
func TestInsecureIgnoreWarns(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	opts := testOptions(t, nil) // an empty known_hosts
	opts.HostKeyPolicy = PolicyInsecureIgnore
	opts.IdleTimeout = 100 * time.Millisecond
	var logs syncBuffer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	obs := &poolCounter{}
	opts.Observer = obs
	e := newExecutor(t, opts)
	if n := strings.Count(logs.String(), "level=WARN msg=\"SSH HOST KEY VERIFICATION IS DISABLED"); n != 1 {
		t.Fatalf("%d start-up warnings, want 1:\n%s", n, logs.String())
	}
	for i := 1; i <= 2; i++ {
		if res, _, err := run(t, e, bashSpec(t, "true", keyServer(s))); err != nil || !res.Succeeded() {
			t.Fatalf("res=%+v err=%v", res, err)
		}
		testenv.Eventually(t, testenv.Patience, "the idle connection to close", func() bool {
			conns, _ := obs.open()
			return conns == 0
		})
		warn := "level=WARN msg=\"SSH HOST KEY NOT VERIFIED: host_key_policy is insecure-ignore; connections can be intercepted\" server=" + s.Addr
		if n := strings.Count(logs.String(), warn); n != i {
			t.Fatalf("after %d connections, %d connection warnings:\n%s", i, n, logs.String())
		}
	}
}
