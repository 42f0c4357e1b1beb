package ssh

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
)

func TestExitCodeAndStreams(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	spec := bashSpec(t, "echo out1; echo err1 >&2; echo out2; exit 7", keyServer(s))
	res, c, err := run(t, e, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Exited || res.ExitCode != 7 || res.Succeeded() || res.Signal != "" {
		t.Fatalf("res = %+v", res)
	}
	if c.stdout.String() != "out1\nout2\n" || c.stderr.String() != "err1\n" {
		t.Fatalf("stdout=%q stderr=%q", c.stdout.String(), c.stderr.String())
	}
	tm := res.Timings
	if tm.SetupStarted.IsZero() || tm.ExecStarted.Before(tm.SetupStarted.Add(-time.Second)) || tm.ExecCompleted.Before(tm.ExecStarted) ||
		tm.CleanupCompleted.Before(tm.CleanupStarted) {
		t.Fatalf("timings = %+v", tm)
	}
	assertNoSpool(t, s, spec)
}

// The job runs under the login umask, as a plain session's command does,
// though setup writes the spool under 077: files the job creates get the
// modes users expect.
func TestJobKeepsTheLoginUmask(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	login := rawOutput(t, s, "umask")
	res, c, err := run(t, e, bashSpec(t, "umask", keyServer(s)))
	if err != nil || !res.Succeeded() {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	if c.stdout.String() != login || login == "0077\n" {
		t.Fatalf("the job's umask is %q, a plain session's %q", c.stdout.String(), login)
	}
}

func TestExitSignalNamed(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	res, _, err := run(t, e, bashSpec(t, "kill -SEGV $$", keyServer(s)))
	if err != nil || res.Signal != "SEGV" || res.ExitCode != 139 || !strings.Contains(res.Describe(), "SEGV") {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

func TestEnvironmentWorkDirAndLanguages(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	nasty := "it's \"quoted\" $HOME `id` \\ \n line2 $(echo no) ; rm -rf /"
	input := json.RawMessage(`{"a":"b c","q":"'"}`)
	for _, tc := range []struct {
		lang   executors.Language
		script string
	}{
		{executors.Bash, `printf '%s|%s|%s|%s' "$NASTY" "$PWD" "$CRONIUM_INPUT_DATA" "$CRONIUM_EXECUTION_ID"`},
		{executors.Python, `import os,sys; sys.stdout.write("|".join([os.environ["NASTY"], os.getcwd(), os.environ["CRONIUM_INPUT_DATA"], os.environ["CRONIUM_EXECUTION_ID"]]))`},
		{executors.Node, `process.stdout.write([process.env.NASTY, process.cwd(), process.env.CRONIUM_INPUT_DATA, process.env.CRONIUM_EXECUTION_ID].join("|"))`},
	} {
		t.Run(string(tc.lang), func(t *testing.T) {
			t.Parallel()
			spec := bashSpec(t, tc.script, keyServer(s))
			spec.Script.Language = tc.lang
			spec.Script.WorkDir = "/tmp"
			spec.Env = map[string]string{"NASTY": nasty}
			spec.InputData = input
			res, c, err := run(t, e, spec)
			want := strings.Join([]string{nasty, "/tmp", string(input), spec.ExecutionID}, "|")
			if err != nil || !res.Succeeded() || c.stdout.String() != want {
				t.Fatalf("res=%+v err=%v\nstdout=%q\nwant  =%q\nstderr=%q", res, err, c.stdout.String(), want, c.stderr.String())
			}
		})
	}
	t.Run("bad workdir", func(t *testing.T) {
		t.Parallel()
		spec := bashSpec(t, "echo never", keyServer(s))
		spec.Script.WorkDir = "/does/not/exist"
		res, c, err := run(t, e, spec)
		if err != nil || res.ExitCode != 1 || !strings.Contains(c.stderr.String(), "/does/not/exist") || c.stdout.Len() != 0 {
			t.Fatalf("res=%+v err=%v stderr=%q", res, err, c.stderr.String())
		}
	})
	t.Run("bad env name", func(t *testing.T) {
		t.Parallel()
		spec := bashSpec(t, "true", keyServer(s))
		spec.Env = map[string]string{"A-B": "secret-value"}
		_, _, err := run(t, e, spec)
		if !errors.Is(err, executors.ErrInvalidSpec) || strings.Contains(err.Error(), "secret-value") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestLargeOutputIntact(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	// 6.5 MB of numbered lines on stdout, interleaved with stderr.
	script := `i=0; while [ $i -lt 20 ]; do seq $((i*10000)) $((i*10000+9999)) | sed 's/$/ abcdefghijklmnopqrstuvwxyz/'; echo e$i >&2; i=$((i+1)); done`
	start := time.Now()
	res, c, err := run(t, e, bashSpec(t, script, keyServer(s)))
	if err != nil || !res.Succeeded() {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	var want strings.Builder
	for i := 0; i < 200000; i++ {
		fmt.Fprintf(&want, "%d abcdefghijklmnopqrstuvwxyz\n", i)
	}
	if got := c.stdout.String(); sha256.Sum256([]byte(got)) != sha256.Sum256([]byte(want.String())) {
		t.Fatalf("stdout differs: %d bytes, want %d", len(got), want.Len())
	}
	if n := strings.Count(c.stderr.String(), "\n"); n != 20 {
		t.Fatalf("stderr has %d lines", n)
	}
	d := time.Since(start)
	t.Logf("%.1f MiB in %s (%.1f MiB/s)", float64(c.stdout.Len())/(1<<20), d.Round(time.Millisecond), float64(c.stdout.Len())/(1<<20)/d.Seconds())
}

// jobProcesses lists the test user's processes other than sshd's.
func jobProcesses(t *testing.T, s interface{ Exec(string) (string, error) }) string {
	t.Helper()
	out, _ := s.Exec(`ps -u cronium -o pid=,args= | grep -v 'sshd' || true`)
	return strings.TrimSpace(out)
}

// stubbornScript ignores TERM and leaves children behind.
const stubbornScript = `trap '' TERM
echo started
(trap '' TERM; exec sleep 301) &
sleep 302 &
while :; do sleep 1; done`

func TestTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	opts := testOptions(t, s)
	e := newExecutor(t, opts)
	spec := bashSpec(t, stubbornScript, keyServer(s))
	spec.Timeout = time.Second
	start := time.Now()
	res, c, err := run(t, e, spec)
	if err != nil || !res.TimedOut || res.Succeeded() || c.stdout.String() != "started\n" {
		t.Fatalf("res=%+v err=%v stdout=%q", res, err, c.stdout.String())
	}
	// Timeout 1s + grace 1s (TERM is ignored, so KILL): never sooner.
	d := time.Since(start)
	t.Logf("timed out and killed after %s (timeout %s, grace %s)", d.Round(time.Millisecond), spec.Timeout, opts.StopGrace)
	if d < spec.Timeout+opts.StopGrace {
		t.Fatalf("took %s: the grace was not honoured", d)
	}
	// The remote watchdog stopped it, not the client's backstop, which
	// fires stopSlack after the job should have been killed, measured from
	// ExecStarted (at most 1s before start: the server counts whole
	// seconds). Not a speed test: it only fails when the watchdog did not
	// act, several times what a loaded machine takes.
	if backstop := spec.Timeout + opts.StopGrace + stopSlack - time.Second; d >= backstop {
		t.Fatalf("took %s: the job ran until the client's backstop (%s), the watchdog did not stop it", d, backstop)
	}
	if res.Signal != "KILL" {
		t.Fatalf("signal = %q, want KILL", res.Signal)
	}
	assertNoJobProcess(t, s, "sleep 30[12]")
	assertNoSpool(t, s, spec)
}

func TestCancelKillsProcessGroup(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	spec := bashSpec(t, strings.ReplaceAll(stubbornScript, "30", "31"), keyServer(s))
	var c capture
	o := runUntil(t, e, spec, &c, func() bool { return c.stdout.String() == "started\n" },
		func(cancel context.CancelCauseFunc) { cancel(executors.ErrCancelled) })
	if o.err != nil || !o.res.Cancelled || o.res.Succeeded() {
		t.Fatalf("res=%+v err=%v", o.res, o.err)
	}
	assertNoJobProcess(t, s, "sleep 31[12]")
	assertNoSpool(t, s, spec)
}

func TestOrphansReapedAtExit(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	// A child left behind in the job's process group, one ignoring TERM.
	res, _, err := run(t, e, bashSpec(t, `sleep 331 & (trap '' TERM; exec sleep 332) & echo bye`, keyServer(s)))
	if err != nil || !res.Succeeded() {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	assertNoJobProcess(t, s, "sleep 33[12]")
}

func TestDetachThenResume(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	// The job holds after line 3 until the test opens its gate: Run
	// returning before that proves that the detach did not wait for the
	// job, however slow the machine.
	spec := bashSpec(t, `for i in $(seq 1 20); do
	echo line $i; echo err $i >&2
	[ $i = 3 ] && while [ ! -e /tmp/gate-$CRONIUM_EXECUTION_ID ]; do sleep 0.05; done
	sleep 0.1
done`, keyServer(s))
	gate := "/tmp/gate-" + spec.ExecutionID
	t.Cleanup(func() { _, _ = s.Exec("rm -f " + gate) })
	var first capture
	o := runUntil(t, e, spec, &first, func() bool { return strings.Contains(first.stdout.String(), "line 3\n") },
		func(cancel context.CancelCauseFunc) { cancel(executors.ErrDetached) })
	if !errors.Is(o.err, executors.ErrDetached) {
		t.Fatalf("err = %v, want ErrDetached", o.err)
	}
	t.Logf("detach took %s", o.after.Round(time.Millisecond))
	if got := first.stdout.String(); got != "line 1\nline 2\nline 3\n" {
		t.Fatalf("stdout before the gate opened: %q", got)
	}
	// A hang catcher: a detach that waited for an internal timeout (the
	// stop confirmation, the handshake timeout) instead of closing at once.
	if o.after > 10*time.Second {
		t.Fatalf("detach took %s", o.after)
	}
	remote(t, s, "touch "+gate)
	spec.Resume = executors.Resume{Resuming: true, StdoutBytes: first.stdout.Len(), StderrBytes: first.stderr.Len()}
	res, second, err := run(t, e, spec)
	if err != nil || !res.Succeeded() {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	assertLines(t, first.stdout.String()+second.stdout.String(), "line", 20)
	assertLines(t, first.stderr.String()+second.stderr.String(), "err", 20)
	assertNoSpool(t, s, spec)
}

func TestResumeOfUnstartedRunStartsIt(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	spec := bashSpec(t, "echo once", keyServer(s))
	spec.Resume = executors.Resume{Resuming: true}
	res, c, err := run(t, e, spec)
	if err != nil || !res.Succeeded() || c.stdout.String() != "once\n" {
		t.Fatalf("res=%+v err=%v stdout=%q", res, err, c.stdout.String())
	}
	// Output was delivered but the spool is gone: refuse, never rerun.
	spec.Resume = executors.Resume{Resuming: true, StdoutBytes: 5}
	if _, _, err := run(t, e, spec); !errors.Is(err, executors.ErrNotResumable) {
		t.Fatalf("err = %v, want ErrNotResumable", err)
	}
}

func TestAbandon(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	spec := bashSpec(t, strings.ReplaceAll(stubbornScript, "30", "32"), keyServer(s))
	var c capture
	o := runUntil(t, e, spec, &c, func() bool { return c.stdout.Len() > 0 },
		func(cancel context.CancelCauseFunc) { cancel(executors.ErrDetached) })
	if !errors.Is(o.err, executors.ErrDetached) {
		t.Fatalf("err = %v", o.err)
	}
	// The job forks "sleep 321" right after its first output, and never
	// ends by itself: it shows up unless the detach stopped it.
	testenv.Eventually(t, testenv.Patience, "the detached job to be running", func() bool {
		return strings.Contains(jobProcesses(t, s), "sleep 321")
	})
	for range 2 { // idempotent
		if err := e.Abandon(t.Context(), spec); err != nil {
			t.Fatal(err)
		}
	}
	assertNoJobProcess(t, s, "sleep 32[12]")
	assertNoSpool(t, s, spec)
}

// assertLines checks that out holds "<word> 1" .. "<word> n" once each, in order.
func assertLines(t *testing.T, out, word string, n int) {
	t.Helper()
	var want strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&want, "%s %d\n", word, i)
	}
	if out != want.String() {
		t.Fatalf("output:\n%s\nwant:\n%s", out, want.String())
	}
}

func assertNoJobProcess(t *testing.T, s interface{ Exec(string) (string, error) }, pattern string) {
	t.Helper()
	out, _ := s.Exec(`pgrep -u cronium -af '` + pattern + `' || true`)
	if strings.TrimSpace(out) != "" {
		t.Fatalf("remote processes remain:\n%s", out)
	}
}

func TestWrapperKilledIsReported(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	spec := bashSpec(t, "echo started; sleep 341", keyServer(s))
	var c capture
	o := runUntil(t, e, spec, &c, func() bool { return c.stdout.Len() > 0 }, func(context.CancelCauseFunc) {
		remote(t, s, `kill -KILL $(pgrep -u cronium -f 'cronium-`+spoolTag(spec.JobID, spec.ExecutionID)+`.*/lib.sh wrap')`)
	})
	if o.err != nil || o.res.Exited || o.res.Succeeded() || !strings.Contains(o.res.Reason, "wrapper") {
		t.Fatalf("res=%+v err=%v", o.res, o.err)
	}
	t.Logf("the lost wrapper was noticed after %s", o.after.Round(time.Millisecond))
	// A hang catcher: the follow step checks the wrapper every 4
	// heartbeats (about 2s, plus the docker exec that killed it); a loss
	// never noticed lasts until the run's deadline.
	if o.after > 30*time.Second {
		t.Fatalf("the lost wrapper was noticed after %s", o.after)
	}
	assertNoJobProcess(t, s, "sleep 341")
	assertNoSpool(t, s, spec)
}

func TestSpoolGoneAfterLaunchIsNotRerun(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	spec := bashSpec(t, "sleep 351", keyServer(s))
	// The job's own process: the job runs as the test user, while the
	// "sh -c" that runs pgrep (as root) has "sleep 351" in its command
	// line too, and would match before the job was even launched.
	o := runUntil(t, e, spec, &capture{}, func() bool {
		out, _ := s.Exec("pgrep -u cronium -f 'sleep 351'")
		return strings.TrimSpace(out) != ""
	}, func(cancel context.CancelCauseFunc) { cancel(executors.ErrDetached) })
	if !errors.Is(o.err, executors.ErrDetached) {
		t.Fatalf("err = %v", o.err)
	}
	// The server "reboots": the job dies and its spool is wiped.
	tag := spoolTag(spec.JobID, spec.ExecutionID)
	remote(t, s, `pkill -KILL -u cronium -f 'sleep 351|cronium-`+tag+`'; rm -rf /tmp/cronium-`+tag+`.*`)
	spec.Resume = executors.Resume{Resuming: true}
	if _, _, err := run(t, e, spec); !errors.Is(err, executors.ErrNotResumable) {
		t.Fatalf("err = %v, want ErrNotResumable", err)
	}
	assertNoJobProcess(t, s, "sleep 351")
}

func TestRemoteSetupFailure(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	opts := testOptions(t, s)
	opts.RemoteSpoolDir = "/no/such/dir"
	_, _, err := run(t, newExecutor(t, opts), bashSpec(t, "true", keyServer(s)))
	if !errors.Is(err, ErrRemote) || executors.IsRetryable(err) || !strings.Contains(err.Error(), "/no/such/dir") {
		t.Fatalf("err = %v, want a non-retryable ErrRemote naming the directory", err)
	}
}
