package ssh

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
)

// The supervisor's orphan recovery knows only the job id: Abandon must say
// it stopped nothing, not return nil.
func TestAbandonWithoutServers(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, testOptions(t, nil))
	for spec, want := range map[*executors.Spec]string{
		{JobID: "job-7"}: "ssh: cannot stop job job-7: its servers are not known to this process",
		{JobID: "job-7", ExecutionID: "exec-9"}: "ssh: cannot stop execution exec-9 of job job-7: " +
			"its servers are not known to this process",
	} {
		err := e.Abandon(t.Context(), *spec)
		if !errors.Is(err, ErrServersUnknown) || err.Error() != want {
			t.Errorf("Abandon(%+v) = %v, want %q", *spec, err, want)
		}
	}
}

// detachAfterStart runs spec until it printed something, then detaches.
func detachAfterStart(t *testing.T, e *Executor, spec executors.Spec) {
	t.Helper()
	var c capture
	o := runUntil(t, e, spec, &c, func() bool { return c.stdout.Len() > 0 },
		func(cancel context.CancelCauseFunc) { cancel(executors.ErrDetached) })
	if !errors.Is(o.err, executors.ErrDetached) {
		t.Fatalf("err = %v, want ErrDetached", o.err)
	}
}

// Spools carry the job id, so that an Abandon with servers and no
// execution id stops every execution of the job, and only those.
func TestAbandonEveryExecutionOfAJob(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	var mine []executors.Spec
	for _, script := range []string{"echo a; sleep 401", "echo b; sleep 402"} {
		spec := bashSpec(t, script, keyServer(s))
		spec.JobID = "job/" + t.Name() + " *" // not a plain name
		detachAfterStart(t, e, spec)
		mine = append(mine, spec)
	}
	other := bashSpec(t, "echo c; sleep 403", keyServer(s))
	detachAfterStart(t, e, other)
	out := remote(t, s, "ls -d /tmp/cronium-"+jobSpools(mine[0].JobID)+" 2>/dev/null || true")
	if n := len(strings.Fields(out)); n != 2 {
		t.Fatalf("%d spools of the job, want 2: %q", n, out)
	}

	if err := e.Abandon(t.Context(), executors.Spec{JobID: mine[0].JobID, Servers: mine[0].Servers}); err != nil {
		t.Fatal(err)
	}
	assertNoJobProcess(t, s, "sleep 40[12]")
	assertNoSpool(t, s, mine[0])
	assertNoSpool(t, s, mine[1])
	if !strings.Contains(jobProcesses(t, s), "sleep 403") {
		t.Fatal("another job's execution was stopped too")
	}
	if err := e.Abandon(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	assertNoJobProcess(t, s, "sleep 403")
	assertNoSpool(t, s, other)
}

// A cancelled run whose stop could not be confirmed over its follow
// session stops the job over its own slot: with every slot busy, asking
// for another would wait until the cleanup gave up, leaving the job
// running.
func TestCancelUnconfirmedWithEverySlotBusy(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	opts := testOptions(t, s)
	opts.MaxConnsPerServer, opts.MaxSessionsPerConn = 1, 1
	e := newExecutor(t, opts)
	spec := bashSpec(t, strings.ReplaceAll(stubbornScript, "30", "41"), keyServer(s))
	var c capture
	o := runUntil(t, e, spec, &c, func() bool { return c.stdout.String() == "started\n" }, func(cancel context.CancelCauseFunc) {
		// The follow step and its control loop: setup is over. The follow
		// step forks all the time (command substitutions, sleep), and a
		// child shares its command line until it execs: look again until
		// only the two long-lived ones match.
		var pids []string
		testenv.Eventually(t, testenv.Patience, "exactly the follow step and its control loop", func() bool {
			pids = strings.Fields(remote(t, s, `pgrep -u cronium -f '`+stepPattern(e, spec)+`' || true`))
			return len(pids) == 2
		})
		remote(t, s, "kill -STOP "+strings.Join(pids, " "))
		cancel(executors.ErrCancelled) // "stop" reaches a frozen follow step
		remote(t, s, "kill -KILL "+strings.Join(pids, " "))
	})
	if o.err != nil || !o.res.Cancelled {
		t.Fatalf("res=%+v err=%v", o.res, o.err)
	}
	// Stopping over a new slot, with every slot busy (its own), would
	// wait until the cleanup's deadline: the stop must end before it.
	deadline := opts.DialTimeout + opts.HandshakeTimeout + opts.StopGrace + stopSlack
	t.Logf("the stop took %s (the cleanup's deadline is %s)", o.after.Round(time.Millisecond), deadline)
	if o.after >= deadline {
		t.Fatalf("the stop took %s: it ran into the cleanup's deadline", o.after)
	}
	assertNoJobProcess(t, s, "sleep 41[12]")
	assertNoSpool(t, s, spec)
}

// stepPattern matches the command lines of the remote steps of spec's
// spool. Each step's program starts with the same variables (spoolVars),
// so its base64 encoding starts the same, up to the last whole 3-byte group.
func stepPattern(e *Executor, spec executors.Spec) string {
	var b strings.Builder
	for _, kv := range spoolVars(e.opts, spoolTag(spec.JobID, spec.ExecutionID)) {
		b.WriteString(kv[0] + "=" + shellQuote(kv[1]) + "\n")
	}
	head := b.String()
	return "echo " + base64.StdEncoding.EncodeToString([]byte(head[:len(head)/3*3]))
}
