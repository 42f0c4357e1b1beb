package ssh

import (
	"context"
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

// poolCounter tracks the peak of open connections and taken slots.
type poolCounter struct {
	nopObserver
	mu                     sync.Mutex
	conns, peakConns       int
	sessions, peakSessions int
	failures               int
}

func (p *poolCounter) Connections(_ string, d int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns += d
	p.peakConns = max(p.peakConns, p.conns)
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
	t.Logf("50 jobs in %s: peak %d connections, %d concurrent jobs, %d connect failures",
		time.Since(start).Round(time.Millisecond), obs.peakConns, obs.peakSessions, obs.failures)
	if obs.peakConns > opts.MaxConnsPerServer || obs.peakSessions > opts.MaxConnsPerServer*opts.MaxSessionsPerConn {
		t.Fatalf("peak %d connections / %d sessions exceeds %d x %d", obs.peakConns, obs.peakSessions,
			opts.MaxConnsPerServer, opts.MaxSessionsPerConn)
	}
	if obs.peakConns < 2 {
		t.Fatalf("peak %d connections: jobs were not spread", obs.peakConns)
	}
}

func TestPooledConnectionReusedAndIdleClosed(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	opts := testOptions(t, s)
	opts.IdleTimeout = 300 * time.Millisecond
	obs := &poolCounter{}
	opts.Observer = obs
	e := newExecutor(t, opts)
	spec := func() executors.Spec { return bashSpec(t, "true", keyServer(s)) }

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
	testenv.Eventually(t, 3*time.Second, "the idle connection to close", func() bool {
		conns, _ := obs.open()
		return conns == 0
	})
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.peakConns != 1 {
		t.Fatalf("peak %d connections, want 1", obs.peakConns)
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
	testenv.Eventually(t, 3*time.Second, "the idle connections to close", func() bool {
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
	if _, err := e.Run(context.Background(), bashSpec(t, "true", keyServer(s)), executors.Output{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: err = %v, want ErrClosed", err)
	}
}

// A dial in progress when Close is called is aborted, and Close waits for
// it: nothing of the pool runs after Close returns.
func TestCloseAbortsDialInProgress(t *testing.T) {
	t.Parallel()
	opts := testOptions(t, nil)
	opts.HandshakeTimeout = 5 * time.Second
	e := newExecutor(t, opts)
	accepted := make(chan struct{}, 1)
	srv := executors.Server{Name: "silent", Host: "127.0.0.1", Port: silentListener(t, accepted), Username: "u", Password: "x"}
	spec := bashSpec(t, "true", srv)
	done := make(chan error, 1)
	go func() {
		_, err := e.Run(context.Background(), spec, executors.Output{})
		done <- err
	}()
	select {
	case <-accepted: // the dial is in its handshake now
	case err := <-done:
		t.Fatalf("Run returned before dialing: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the dial did not reach the listener")
	}
	start := time.Now()
	_ = e.Close()
	closed := time.Since(start)
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Run: err = %v, want ErrClosed", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run still dialing after Close returned")
	}
	if closed > 2*time.Second {
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
