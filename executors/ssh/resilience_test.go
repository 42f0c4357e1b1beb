package ssh

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

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
	opts := testOptions(t, s)
	obs := &poolCounter{}
	opts.Observer = obs
	e := newExecutor(t, opts)
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

	// The supervisor restarts the actor; sshd comes back while it
	// reconnects: once the resumed run has seen a reconnect fail, however
	// long that took. It keeps trying for ReconnectBackoffMax, which a slow
	// sshd start stays far within.
	spec.Resume = executors.Resume{Resuming: true, StdoutBytes: first.stdout.Len(), StderrBytes: first.stderr.Len()}
	failed := obs.failed()
	var second capture
	var restarted time.Time
	o := runUntil(t, e, spec, &second, func() bool { return obs.failed() > failed }, func(context.CancelCauseFunc) {
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		restarted = time.Now()
	})
	if o.err != nil || !o.res.Succeeded() {
		t.Fatalf("resumed: res=%+v err=%v", o.res, o.err)
	}
	t.Logf("resumed run: %d failed reconnects, done %s after sshd was back", obs.failed()-failed,
		time.Since(restarted).Round(time.Millisecond))
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
	d := time.Since(start)
	t.Logf("resumed run gave up after %s (ReconnectBackoffMax %s): %v", d.Round(time.Millisecond), opts.ReconnectBackoffMax, err)
	// A hang catcher, not a speed test: 10x the policy, and a third of the
	// 30s a run that ignored the policy (testOptions, the default) would
	// keep trying.
	if limit := 10 * opts.ReconnectBackoffMax; d > limit {
		t.Fatalf("resumed run took %s, more than %s: it did not give up after ReconnectBackoffMax", d, limit)
	}
}

func TestFrozenConnectionDetected(t *testing.T) {
	t.Parallel()
	s := testenv.StartSSHD(t, 0)
	opts := testOptions(t, s)
	// This test is about frozen-peer detection: a short window, still far
	// above a keepalive round trip on a loaded machine (a live connection
	// declared dead before the freeze fails the test: "Run returned early").
	opts.KeepaliveInterval, opts.KeepaliveMaxMissed = 250*time.Millisecond, 12
	var logs syncBuffer
	opts.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, &logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newExecutor(t, opts)
	spec := bashSpec(t, slowLines("frozen-runs", 40), keyServer(s))
	var first capture
	noticed, err := runUntilLost(t, e, spec, &first, "line 3\n", func() {
		if err := s.StopConnections(); err != nil {
			t.Fatal(err)
		}
	})
	if !executors.IsRetryable(err) || !errors.Is(err, ErrConnLost) {
		t.Fatalf("err = %v, want a retryable ErrConnLost", err)
	}
	window := opts.keepaliveWindow()
	t.Logf("frozen connection detected after %s (window %s)", noticed.Round(time.Millisecond), window)
	// The keepalive is what noticed: nothing else would, short of the run's
	// own deadline.
	if !strings.Contains(logs.String(), `msg="ssh: connection unresponsive, closing it"`) {
		t.Fatal("the run failed, but not because the keepalive declared the connection dead")
	}
	// A hang catcher only: 10x the window.
	if noticed > 10*window {
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
	if runs := remote(t, s, "cat /tmp/frozen-runs"); runs != "run\n" {
		t.Fatalf("the job ran %d times", strings.Count(runs, "run"))
	}
}

// breakerLog records breaker transitions and failed connects by class.
type breakerLog struct {
	nopObserver
	mu          sync.Mutex
	transitions []string
	failed      map[string]int
}

func (b *breakerLog) BreakerChanged(_, from, to string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.transitions = append(b.transitions, from+">"+to)
}

func (b *breakerLog) ConnectFailed(_, class string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failed == nil {
		b.failed = map[string]int{}
	}
	b.failed[class]++
}

func (b *breakerLog) failures(class string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failed[class]
}

func (b *breakerLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.transitions, ",")
}

func TestBreakerOpensAndCloses(t *testing.T) {
	t.Parallel()
	// A server that is down: it accepts and closes every connection
	// before the handshake, counting them. A connect attempt fails only
	// once the handler closed its connection, so when Run returns, every
	// dial it made is counted.
	var accepted atomic.Int32
	down := serveEach(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		accepted.Add(1)
		_ = c.Close()
	})
	port := down.Addr().(*net.TCPAddr).Port
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
	_, _, err := run(t, e, bashSpec(t, "true", srv))
	if !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("err = %v, want ErrBreakerOpen", err)
	}
	// Failing fast means rejected without dialing: the server saw only
	// the attempts that opened the breaker.
	if n := accepted.Load(); int(n) != opts.BreakerFailures {
		t.Fatalf("the server saw %d connections, want %d: the open breaker let a dial through", n, opts.BreakerFailures)
	}
	if u, b := obs.failures("unreachable"), obs.failures("breaker_open"); u != opts.BreakerFailures || b != 1 {
		t.Fatalf("failed connects: %d unreachable, %d breaker_open; want %d, 1", u, b, opts.BreakerFailures)
	}
	t.Logf("open (rejected in %s): %v", time.Since(start).Round(time.Microsecond), err)

	// The server comes up on that port; once the open timeout passed, one
	// probe goes through and closes the breaker.
	_ = down.Close()
	s := testenv.StartSSHD(t, port)
	writeKnownHosts(t, opts.KnownHosts, s.KnownHostsLine())
	srv = keyServer(s)
	cb := e.pool.breakers.get(srv.Address())
	testenv.Eventually(t, opts.BreakerOpenTimeout+testenv.Patience, "the breaker to half-open", func() bool {
		return cb.State() == gobreaker.StateHalfOpen
	})
	if res, _, err := run(t, e, bashSpec(t, "true", srv)); err != nil || !res.Succeeded() {
		t.Fatalf("after recovery: res=%+v err=%v", res, err)
	}
	if got := obs.String(); got != "closed>open,open>half-open,half-open>closed" {
		t.Fatalf("transitions = %s", got)
	}
}
