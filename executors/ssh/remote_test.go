package ssh

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
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

// A setup whose upload is cut short fails before it makes a spool; one
// that fails after removes it: it holds the job's environment.
func TestSetupFailureRemovesSpool(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	const script = "echo never"
	whole := string(unpackProgram(envFile([]executors.EnvVar{{Name: "A", Value: "1"}}), nil, "script.sh", script))
	for _, tc := range []struct {
		name, unpack, want string
		nunpack            int // of the upload's own length when 0
		helpers            bool
	}{
		{"truncated upload", whole[:len(whole)-3], "upload truncated", len(whole), false},
		{"no end line", whole[:strings.LastIndex(whole, ":")], "upload truncated", 0, false},
		{"unpack program fails", "exit 1\n" + whole, "upload could not be unpacked", 0, false},
		{"helpers without their token", whole, "helpers upload failed", 0, true},
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
			vars := append(spoolVars(e.opts, spoolTag(spec.JobID, spec.ExecutionID)), jobVars(executors.Bash, "", "script.sh", 0)...)
			vars = append(vars, uploadVars(cmp.Or(tc.nunpack, len(tc.unpack)), tc.helpers)...)
			sess.Stdin = strings.NewReader(tc.unpack)
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

// setupUpload is the setup step's variables and stdin for a Bash script,
// as tests that run the step alone pass them: no environment, no helpers.
func setupUpload(e *Executor, tag, script string) ([][2]string, string) {
	unpack := unpackProgram(envFile(nil), nil, "script.sh", script)
	vars := append(spoolVars(e.opts, tag), jobVars(executors.Bash, "", "script.sh", 0)...)
	vars = append(vars, uploadVars(len(unpack), false)...)
	return vars, string(unpack)
}

func TestSpoolIsPrivate(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	// The job looks at its own spool: $0 is the script in it. Only umask,
	// which holds the login umask and nothing secret, is written before
	// setup's umask 077 (see setup), so under the login umask.
	spec := bashSpec(t, `d=$(dirname "$0"); stat -c '%a %U' "$d"; find "$d" -perm /077 ! -path "$d/umask" | wc -l; basename "$d"`, keyServer(s))
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

// A setup whose session outlived its client (the orchestrator was killed
// mid-upload, or the server froze) and a resumed run that looked for the
// spool before that setup made it: the late setup must not launch, or the
// resumed run's own setup would run the script a second time.
func TestLateSetupNeverLaunchesAfterAResumedFollow(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	marker := "/tmp/late-setup-" + randomHex(6)
	script := "echo ran > " + marker
	spec := bashSpec(t, script, keyServer(s))
	tag := spoolTag(spec.JobID, spec.ExecutionID)
	t.Cleanup(func() { e.Abandon(context.Background(), spec) })
	session := func() *xssh.Session {
		l, err := e.pool.acquire(t.Context(), keyServer(s), false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.release)
		sess, err := l.newSession()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.endSession(sess) })
		return sess
	}

	late := session()
	upload, feed := io.Pipe()
	late.Stdin = upload
	var lateOut bytes.Buffer
	late.Stdout = &lateOut
	vars, stdin := setupUpload(e, tag, script)
	cmd, sync := remoteCommand(vars, "setup")
	if err := late.Start(cmd); err != nil {
		t.Fatal(err)
	}
	// The setup waits for its upload: its one child, head, blocked in read
	// (each step before forks and waits for a child of its own).
	testenv.Eventually(t, testenv.Patience, "the setup to wait for its upload", func() bool {
		out, _ := s.Exec(`for p in $(pgrep -f '^/bin/sh -c echo ` + sync + `'); do
	for c in $(pgrep -P $p -x head); do
		grep -q '^State:[[:space:]]*S' /proc/$c/status && echo blocked
	done
done; true`)
		return strings.Contains(out, "blocked")
	})

	follow := session()
	fvars := append(spoolVars(e.opts, tag), [2]string{"o", "0"}, [2]string{"e", "0"})
	fcmd, fsync := remoteCommand(fvars, "follow")
	fout, _ := follow.Output(fcmd)
	if f, err := newFrameReader(bytes.NewReader(fout), fsync).next(); err != nil || f.kind != 'N' {
		t.Fatalf("the resumed follow found something: %q %v (%v)", f.kind, f.args, err)
	}

	io.WriteString(feed, stdin)
	feed.Close()
	late.Wait() // exits 3
	f, err := newFrameReader(bytes.NewReader(lateOut.Bytes()), sync).next()
	if err != nil || f.kind != 'F' || !strings.Contains(f.args[0], "superseded") {
		t.Fatalf("the late setup answered %q %v (%v); output %q", f.kind, f.args, err, lateOut.String())
	}
	if out := remote(t, s, "cat "+marker+" 2>/dev/null; true"); strings.TrimSpace(out) != "" {
		t.Fatalf("the late setup ran the script: %q", out)
	}
	if out := remote(t, s, "ls -d /tmp/cronium-"+tag+".?????? 2>/dev/null; true"); strings.TrimSpace(out) != "" {
		t.Fatalf("the late setup left its spool: %s", out)
	}
}

// A setup cut between claiming the launch and starting the wrapper leaves a
// launched spool with no wrapper: a minute after the launch, follow ends it
// as lost instead of waiting for a status nothing will write. When the job
// started is the mtime of launched, or launch_at where an earlier version
// wrote it; the follow's A frame gives the seconds since.
func TestLaunchedSpoolWithoutWrapperEndsLost(t *testing.T) {
	t.Parallel()
	for name, layout := range map[string]string{
		"launched's mtime": `: >"$d/launched"; touch -d "@$(( $(date +%s) - 120 ))" "$d/launched"`,
		"earlier version":  `mkdir -p "$d/launched"; echo $(( $(date +%s) - 120 )) >"$d/launch_at"`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			followLostSpool(t, layout)
		})
	}
}

func followLostSpool(t *testing.T, layout string) {
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	spec := bashSpec(t, "echo never", keyServer(s))
	tag := spoolTag(spec.JobID, spec.ExecutionID)
	t.Cleanup(func() { e.Abandon(context.Background(), spec) })
	remote(t, s, `set -e
d=/tmp/cronium-`+tag+`.AbCdEf
mkdir -p "$d"
`+layout+`
: >"$d/out"; : >"$d/err"
chown -R `+s.User+` "$d"; chmod 700 "$d"`)

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
	vars := append(spoolVars(e.opts, tag), [2]string{"o", "0"}, [2]string{"e", "0"})
	cmd, sync := remoteCommand(vars, "follow")
	stdin, _ := sess.StdinPipe()
	defer stdin.Close()
	stdout, _ := sess.StdoutPipe()
	if err := sess.Start(cmd); err != nil {
		t.Fatal(err)
	}
	fr := newFrameReader(stdout, sync)
	for {
		f, err := fr.next()
		if err != nil {
			t.Fatalf("no end frame: %v", err)
		}
		if f.kind == 'A' {
			if n, err := strconv.Atoi(f.args[len(f.args)-1]); err != nil || n < 119 || n > 600 {
				t.Fatalf("A frame %v: want about 120 s since the launch", f.args)
			}
		}
		if f.kind == 'X' {
			if strings.Join(f.args, " ") != "255 lost" {
				t.Fatalf("end frame %v, want 255 lost", f.args)
			}
			return
		}
	}
}
