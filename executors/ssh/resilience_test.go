package ssh

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
)

// slowLines prints "line 1".."line n" every 100ms after recording, once, that
// it started.
func slowLines(marker string, n int) string {
	return `echo run >> /tmp/` + marker + `
for i in $(seq 1 ` + strconv.Itoa(n) + `); do echo "line $i"; sleep 0.1; done`
}

// runUntilLost runs spec until the harness breaks the connection, returning
// Run's error and how long it took to notice.
func runUntilLost(t *testing.T, e *Executor, spec executors.Spec, c *capture, afterLine string, breakIt func()) (time.Duration, error) {
	t.Helper()
	o := runUntil(t, e, spec, c, func() bool { return strings.Contains(c.stdout.String(), afterLine) },
		func(context.CancelCauseFunc) { breakIt() })
	return o.after, o.err
}

func TestSSHDRestartMidJob(t *testing.T) {
	t.Parallel()
	s := testenv.StartSSHD(t, 0)
	e := newExecutor(t, testOptions(t, s))
	spec := bashSpec(t, slowLines("restart-runs", 30), keyServer(s))
	var first capture
	noticed, err := runUntilLost(t, e, spec, &first, "line 5\n", func() {
		if err := s.KillSSHD(); err != nil {
			t.Fatal(err)
		}
	})
	if !executors.IsRetryable(err) || !errors.Is(err, ErrConnLost) {
		t.Fatalf("err = %v, want a retryable ErrConnLost", err)
	}
	t.Logf("connection loss noticed after %s: %v", noticed.Round(time.Millisecond), err)

	// The supervisor restarts the actor; sshd comes back while it reconnects.
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(700 * time.Millisecond)
		restarted <- s.Start()
	}()
	spec.Resume = executors.Resume{Resuming: true, StdoutBytes: first.stdout.Len(), StderrBytes: first.stderr.Len()}
	res, second, err := run(t, e, spec)
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	if err != nil || !res.Succeeded() {
		t.Fatalf("resumed: res=%+v err=%v", res, err)
	}
	assertLines(t, first.stdout.String()+second.stdout.String(), "line", 30)
	if runs := remote(t, s, "cat /tmp/restart-runs"); runs != "run\n" {
		t.Fatalf("the job ran %d times", strings.Count(runs, "run"))
	}
	assertNoSpool(t, s, spec)
}

func TestServerGoneBeyondPolicy(t *testing.T) {
	t.Parallel()
	s := testenv.StartSSHD(t, 0)
	opts := testOptions(t, s)
	opts.ReconnectBackoffMax = time.Second
	e := newExecutor(t, opts)
	spec := bashSpec(t, slowLines("gone-runs", 50), keyServer(s))
	var c capture
	_, err := runUntilLost(t, e, spec, &c, "line 2\n", func() { _ = s.KillSSHD() })
	if !executors.IsRetryable(err) {
		t.Fatalf("err = %v", err)
	}
	// Each resumed Run tries for about ReconnectBackoffMax, then hands a
	// retryable error with the reason back to the supervisor.
	spec.Resume = executors.Resume{Resuming: true, StdoutBytes: c.stdout.Len()}
	start := time.Now()
	_, _, err = run(t, e, spec)
	if !executors.IsRetryable(err) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want retryable unreachable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("resumed run took %s", d)
	}
	t.Logf("reason: %v", err)
}

func TestFrozenConnectionDetected(t *testing.T) {
	t.Parallel()
	s := testenv.StartSSHD(t, 0)
	opts := testOptions(t, s)
	e := newExecutor(t, opts)
	spec := bashSpec(t, slowLines("frozen-runs", 40), keyServer(s))
	var first capture
	noticed, err := runUntilLost(t, e, spec, &first, "line 3\n", func() {
		if err := s.StopConnections(); err != nil {
			t.Fatal(err)
		}
	})
	if !executors.IsRetryable(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	window := opts.keepaliveWindow()
	t.Logf("frozen connection detected after %s (window %s)", noticed.Round(time.Millisecond), window)
	if noticed > window+opts.KeepaliveInterval+500*time.Millisecond {
		t.Fatalf("detected after %s, window %s", noticed, window)
	}
	if err := s.ContinueConnections(); err != nil {
		t.Fatal(err)
	}
	spec.Resume = executors.Resume{Resuming: true, StdoutBytes: first.stdout.Len(), StderrBytes: first.stderr.Len()}
	res, second, err := run(t, e, spec)
	if err != nil || !res.Succeeded() {
		t.Fatalf("resumed: res=%+v err=%v", res, err)
	}
	assertLines(t, first.stdout.String()+second.stdout.String(), "line", 40)
}

// breakerLog records breaker transitions.
type breakerLog struct {
	nopObserver
	mu          sync.Mutex
	transitions []string
}

func (b *breakerLog) BreakerChanged(_, from, to string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.transitions = append(b.transitions, from+">"+to)
}

func (b *breakerLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.transitions, ",")
}

func TestBreakerOpensAndCloses(t *testing.T) {
	t.Parallel()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t, nil)
	obs := &breakerLog{}
	opts.Observer = obs
	e := newExecutor(t, opts)
	srv := executors.Server{Name: "down", Host: "127.0.0.1", Port: port, Username: "cronium", Password: "x"}
	for i := range opts.BreakerFailures {
		if _, _, err := run(t, e, bashSpec(t, "true", srv)); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("attempt %d: err = %v", i, err)
		}
	}
	start := time.Now()
	_, _, err = run(t, e, bashSpec(t, "true", srv))
	if !errors.Is(err, ErrBreakerOpen) || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("err = %v after %s, want a fast ErrBreakerOpen", err, time.Since(start))
	}
	t.Logf("open: %v", err)

	// The server comes up on that port; after the open timeout one probe
	// goes through and closes the breaker.
	s := testenv.StartSSHD(t, port)
	writeKnownHosts(t, opts.KnownHosts, s.KnownHostsLine())
	srv = keyServer(s)
	time.Sleep(opts.BreakerOpenTimeout)
	if res, _, err := run(t, e, bashSpec(t, "true", srv)); err != nil || !res.Succeeded() {
		t.Fatalf("after recovery: res=%+v err=%v", res, err)
	}
	if got := obs.String(); got != "closed>open,open>half-open,half-open>closed" {
		t.Fatalf("transitions = %s", got)
	}
}
