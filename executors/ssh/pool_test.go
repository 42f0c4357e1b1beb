package ssh

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/secret"
)

// poolCounter tracks what the pool reports: the peak of open connections
// and taken slots, the connections it opened in all, and failed connects.
// These are the pool's own events, so a slow machine cannot inflate them.
type poolCounter struct {
	nopObserver
	mu                     sync.Mutex
	conns, peakConns       int
	dials                  int
	sessions, peakSessions int
	failures               int
}

func (p *poolCounter) Connections(_ string, d int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns += d
	p.peakConns = max(p.peakConns, p.conns)
	if d > 0 {
		p.dials += d
	}
}

func (p *poolCounter) Sessions(_ string, d int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sessions += d
	p.peakSessions = max(p.peakSessions, p.sessions)
}

// open reports the connections open and the slots taken now.
func (p *poolCounter) open() (conns, sessions int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns, p.sessions
}

func (p *poolCounter) ConnectFailed(string, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures++
}

// failed reports the failed connects so far.
func (p *poolCounter) failed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failures
}

func TestConcurrentJobsShareConnections(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	opts := testOptions(t, s)
	obs := &poolCounter{}
	opts.Observer = obs
	opts.MaxSessionsPerConn = 8
	opts.MaxConnsPerServer = 4
	e := newExecutor(t, opts)
	const jobs = 50
	var wg sync.WaitGroup
	errs := make(chan error, jobs)
	start := time.Now()
	for i := range jobs {
		wg.Go(func() {
			res, c, err := run(t, e, bashSpec(t, fmt.Sprintf("sleep 0.3; echo job %d", i), keyServer(s)))
			switch {
			case err != nil:
				errs <- err
			case !res.Succeeded() || c.stdout.String() != fmt.Sprintf("job %d\n", i):
				errs <- fmt.Errorf("job %d: res=%+v stdout=%q stderr=%q", i, res, c.stdout.String(), c.stderr.String())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	t.Logf("50 jobs in %s: peak %d connections (%d opened in all), %d concurrent jobs, %d connect failures",
		time.Since(start).Round(time.Millisecond), obs.peakConns, obs.dials, obs.peakSessions, obs.failures)
	if obs.peakConns > opts.MaxConnsPerServer || obs.peakSessions > opts.MaxConnsPerServer*opts.MaxSessionsPerConn {
		t.Fatalf("peak %d connections / %d sessions exceeds %d x %d", obs.peakConns, obs.peakSessions,
			opts.MaxConnsPerServer, opts.MaxSessionsPerConn)
	}
	if obs.peakConns < 2 {
		t.Fatalf("peak %d connections: jobs were not spread", obs.peakConns)
	}
}

// A job with helpers holds two sessions at once, its follow and its relay:
// a connection full of such jobs must stay within sshd's MaxSessions (10),
// or sshd refuses their sessions for as long as the jobs run.
func TestJobsWithHelpersCountTwoSessions(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	opts := testOptions(t, s)
	obs := &poolCounter{}
	opts.Observer = obs
	opts.MaxSessionsPerConn = 9
	opts.MaxConnsPerServer = 1
	e := newExecutor(t, opts)
	const jobs = 12
	var wg sync.WaitGroup
	errs := make(chan error, jobs)
	for i := range jobs {
		wg.Go(func() {
			spec, _ := withHelpers(t, bashSpec(t, fmt.Sprintf("sleep 1; echo job %d", i), keyServer(s)), &testenv.Variables{})
			res, c, err := run(t, e, spec)
			switch {
			case err != nil:
				errs <- fmt.Errorf("job %d: %w", i, err)
			case !res.Succeeded() || c.stdout.String() != fmt.Sprintf("job %d\n", i):
				errs <- fmt.Errorf("job %d: res=%+v stdout=%q stderr=%q", i, res, c.stdout.String(), c.stderr.String())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.peakSessions > opts.MaxSessionsPerConn {
		t.Fatalf("peak %d sessions on one connection, want at most %d", obs.peakSessions, opts.MaxSessionsPerConn)
	}
}

func TestPooledConnectionReusedAndIdleClosed(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	spec := func() executors.Spec { return bashSpec(t, "true", keyServer(s)) }

	// Reuse: jobs one after the other share one connection. The idle
	// timeout is far beyond any gap between two jobs, however slow the
	// machine, so the pool opening a second connection is a defect.
	opts := testOptions(t, s)
	opts.IdleTimeout = time.Hour
	obs := &poolCounter{}
	opts.Observer = obs
	e := newExecutor(t, opts)
	start := time.Now()
	if _, _, err := run(t, e, spec()); err != nil {
		t.Fatal(err)
	}
	fresh := time.Since(start)
	const n = 10
	start = time.Now()
	for range n {
		if _, _, err := run(t, e, spec()); err != nil {
			t.Fatal(err)
		}
	}
	pooled := time.Since(start) / n
	t.Logf("job round trip: %s on a fresh connection, %s on a pooled one", fresh.Round(time.Millisecond), pooled.Round(time.Millisecond))
	if conns, slots := obs.open(); conns != 1 || slots != 0 {
		t.Fatalf("pool = %d connections, %d slots taken, want 1, 0", conns, slots)
	}
	obs.mu.Lock()
	dials, peak := obs.dials, obs.peakConns
	obs.mu.Unlock()
	if dials != 1 || peak != 1 {
		t.Fatalf("%d jobs opened %d connections (peak %d), want 1", n+1, dials, peak)
	}

	// Idle close: a connection that served a job closes once it was idle
	// for IdleTimeout.
	opts = testOptions(t, s)
	opts.IdleTimeout = 300 * time.Millisecond
	obs = &poolCounter{}
	opts.Observer = obs
	e = newExecutor(t, opts)
	if _, _, err := run(t, e, spec()); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	testenv.Eventually(t, testenv.Patience, "the idle connection to close", func() bool {
		conns, _ := obs.open()
		return conns == 0
	})
	t.Logf("idle connection closed %s after the job (idle timeout %s)", time.Since(start).Round(time.Millisecond), opts.IdleTimeout)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.peakConns != 1 || obs.dials != 1 {
		t.Fatalf("peak %d connections, %d opened, want 1", obs.peakConns, obs.dials)
	}
}

func TestPoolForgetsClosedEntries(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	opts := testOptions(t, s)
	opts.IdleTimeout = 200 * time.Millisecond
	obs := &poolCounter{}
	opts.Observer = obs
	e := newExecutor(t, opts)
	byPassword := keyServer(s)
	byPassword.PrivateKey, byPassword.Password = "", secret.Value(s.Password)
	for _, srv := range []executors.Server{keyServer(s), byPassword} {
		if res, _, err := run(t, e, bashSpec(t, "true", srv)); err != nil || !res.Succeeded() {
			t.Fatalf("res=%+v err=%v", res, err)
		}
	}
	// A failed dial leaves nothing behind either.
	bad := keyServer(s)
	bad.PrivateKey = secret.Value(otherKey(t))
	if _, _, err := run(t, e, bashSpec(t, "true", bad)); !errors.Is(err, ErrAuthRejected) {
		t.Fatalf("err = %v, want ErrAuthRejected", err)
	}
	testenv.Eventually(t, testenv.Patience, "the idle connections to close", func() bool {
		conns, _ := obs.open()
		return conns == 0
	})
	e.pool.mu.Lock()
	defer e.pool.mu.Unlock()
	if len(e.pool.entries) != 0 || len(e.pool.servers) != 0 {
		t.Fatalf("the pool still holds %d entries (credentials) and %d servers after their connections closed",
			len(e.pool.entries), len(e.pool.servers))
	}
}

func TestCloseWaitsAndRefuses(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	opts := testOptions(t, s)
	obs := &poolCounter{}
	opts.Observer = obs
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, e, bashSpec(t, "true", keyServer(s))); err != nil {
		t.Fatal(err)
	}
	if conns, _ := obs.open(); conns != 1 {
		t.Fatalf("%d connections open before Close, want 1", conns)
	}
	_ = e.Close()
	if conns, slots := obs.open(); conns != 0 || slots != 0 {
		t.Fatalf("after Close: %d connections, %d slots, want 0", conns, slots)
	}
	if _, err := e.Run(t.Context(), bashSpec(t, "true", keyServer(s)), executors.Output{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: err = %v, want ErrClosed", err)
	}
}

// A dial in progress when Close is called is aborted, and Close waits for
// it: nothing of the pool runs after Close returns.
func TestCloseAbortsDialInProgress(t *testing.T) {
	t.Parallel()
	opts := testOptions(t, nil)
	// The server never speaks: the dial ends by being aborted, or after
	// this, which the bounds below are far from.
	opts.HandshakeTimeout = 2 * time.Minute
	e := newExecutor(t, opts)
	accepted := make(chan struct{}, 1)
	srv := executors.Server{Name: "silent", Host: "127.0.0.1", Port: silentListener(t, accepted), Username: "u", Password: "x"}
	spec := bashSpec(t, "true", srv)
	done := make(chan error, 1)
	go func() {
		_, err := e.Run(t.Context(), spec, executors.Output{})
		done <- err
	}()
	select {
	case <-accepted: // the dial is in its handshake now
	case err := <-done:
		t.Fatalf("Run returned before dialing: %v", err)
	case <-time.After(testenv.Patience):
		t.Fatal("the dial did not reach the listener")
	}
	start := time.Now()
	_ = e.Close()
	closed := time.Since(start)
	t.Logf("Close returned after %s", closed.Round(time.Millisecond))
	// Close waited for the dial (the pool's wait group), so Run has
	// nothing left to wait for: it returns as soon as it is scheduled.
	// The bounds are hang catchers, far below the handshake timeout that
	// an unaborted dial would run into.
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Run: err = %v, want ErrClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run still dialing after Close returned")
	}
	if closed > 30*time.Second {
		t.Fatalf("Close took %s: it waited for the handshake timeout instead of aborting the dial", closed)
	}
}

// silentListener accepts connections, signals accepted (when not nil and
// not full) and never speaks; it returns its port. Its connections close
// when the test ends.
func silentListener(t *testing.T, accepted chan<- struct{}) int {
	t.Helper()
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	l := serveEach(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		select {
		case accepted <- struct{}{}:
		default:
		}
		<-stop
		_ = c.Close()
	})
	return l.Addr().(*net.TCPAddr).Port
}

func TestConnectionCapSpansCredentials(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	opts := testOptions(t, s)
	opts.MaxConnsPerServer = 1
	obs := &poolCounter{}
	opts.Observer = obs
	e := newExecutor(t, opts)
	byKey := keyServer(s)
	byPassword := keyServer(s)
	byPassword.PrivateKey, byPassword.Password = "", secret.Value(s.Password)
	var wg sync.WaitGroup
	for _, srv := range []executors.Server{byKey, byPassword, byKey, byPassword} {
		wg.Go(func() {
			if res, _, err := run(t, e, bashSpec(t, "sleep 0.2", srv)); err != nil || !res.Succeeded() {
				t.Errorf("res=%+v err=%v", res, err)
			}
		})
	}
	wg.Wait()
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.peakConns != 1 {
		t.Fatalf("peak %d connections to one server, cap 1", obs.peakConns)
	}
}
