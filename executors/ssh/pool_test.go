package ssh

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cronium/orchestrator/executors"
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
	if st := e.poolStats()[s.Addr]; st[0] != 1 || st[1] != 0 {
		t.Fatalf("pool = %v connections/slots, want 1/0", st)
	}
	waitFor(t, 3*time.Second, func() bool { return e.poolStats()[s.Addr][0] == 0 })
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.conns != 0 || obs.peakConns != 1 {
		t.Fatalf("connections open %d, peak %d", obs.conns, obs.peakConns)
	}
}

func TestCloseWaitsAndRefuses(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e, err := New(testOptions(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, e, bashSpec(t, "true", keyServer(s))); err != nil {
		t.Fatal(err)
	}
	_ = e.Close()
	if _, err := e.Run(context.Background(), bashSpec(t, "true", keyServer(s)), executors.Output{}); err == nil {
		t.Fatal("Run after Close succeeded")
	}
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
