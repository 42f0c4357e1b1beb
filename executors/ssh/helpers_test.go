package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/secret"
)

// shared is one sshd for the tests that do not disturb it.
var shared struct {
	once sync.Once
	s    *testenv.SSHD
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.s != nil {
		shared.s.Close()
	}
	os.Exit(code)
}

func sharedSSHD(t testing.TB) *testenv.SSHD {
	t.Helper()
	shared.once.Do(func() { shared.s, shared.err = testenv.NewSSHD(0) })
	switch {
	case errors.Is(shared.err, testenv.ErrUnavailable):
		testenv.Unavailable(t, "%v", shared.err)
	case shared.err != nil:
		t.Fatalf("start sshd: %v", shared.err)
	}
	return shared.s
}

// testOptions are options whose timeouts a loaded machine cannot run into
// on a path that should succeed: a test's verdict must not depend on how
// fast the machine is. A test about a failure path (a handshake timeout, a
// frozen peer, a resumed run that gives up) sets the short value it is
// about itself, and asserts on the behaviour, not on wall-clock speed.
//
// The keepalive window is 10s: a live connection whose sshd is starved of
// CPU for a moment must not be declared dead (a 750ms window did that to
// busy connections). A server that goes away (sshd killed) closes the
// socket, which is noticed at once, without a keepalive.
func testOptions(t testing.TB, s *testenv.SSHD) Options {
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if s != nil {
		if err := os.WriteFile(kh, []byte(s.KnownHostsLine()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return Options{
		KnownHosts:         kh,
		DialTimeout:        10 * time.Second,
		HandshakeTimeout:   15 * time.Second,
		KeepaliveInterval:  2 * time.Second,
		KeepaliveMaxMissed: 5,
		// Connections stay pooled for the whole test unless it is about
		// idle connections (and sets its own).
		IdleTimeout:        time.Minute,
		BreakerFailures:    3,
		BreakerOpenTimeout: 5 * time.Second,
		// A resumed run that expects the server back keeps trying for
		// long enough to wait out a slow sshd restart.
		ReconnectBackoffMax: 30 * time.Second,
		// The stop grace only delays KILL (the remote side counts at least
		// this long): a slow machine makes it longer, never shorter, and no
		// test expects a job to finish within it.
		StopGrace: time.Second,
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func newExecutor(t *testing.T, opts Options) *Executor {
	t.Helper()
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func keyServer(s *testenv.SSHD) executors.Server {
	return executors.Server{ID: "srv", Name: "box", Host: s.Host, Port: s.Port, Username: s.User,
		PrivateKey: secret.Value(s.Key)}
}

var specSeq struct {
	sync.Mutex
	n int
}

func bashSpec(t *testing.T, script string, servers ...executors.Server) executors.Spec {
	specSeq.Lock()
	specSeq.n++
	n := specSeq.n
	specSeq.Unlock()
	return executors.Spec{
		JobID:       "job-" + t.Name(),
		ExecutionID: fmt.Sprintf("exec-%d-%d", time.Now().UnixNano()%1e9, n),
		Script:      &executors.Script{Language: executors.Bash, Content: script},
		Servers:     servers,
	}
}

// syncBuffer is an output writer safe to read while Run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) Len() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return int64(b.b.Len())
}

type capture struct{ stdout, stderr syncBuffer }

func (c *capture) output() executors.Output {
	return executors.Output{Stdout: &c.stdout, Stderr: &c.stderr}
}

func run(t *testing.T, e *Executor, spec executors.Spec) (executors.Result, *capture, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testenv.Patience)
	defer cancel()
	var c capture
	res, err := e.Run(ctx, spec, c.output())
	return res, &c, err
}

// outcome is what a Run in the background returned.
type outcome struct {
	res executors.Result
	err error
	// after is how long Run took to return once act was called.
	after time.Duration
}

// runUntil runs spec in the background and, on the test goroutine, waits
// until cond holds, then calls act (which may cancel Run's context with a
// cause, or break the server) and waits for Run to return. If the test
// fails before, Run is cancelled and waited for: nothing outlives the test.
func runUntil(t *testing.T, e *Executor, spec executors.Spec, c *capture, cond func() bool,
	act func(cancel context.CancelCauseFunc)) outcome {
	t.Helper()
	parent, cancel := context.WithCancelCause(t.Context())
	ctx, stop := context.WithTimeout(parent, testenv.Patience)
	defer stop()
	done := make(chan outcome, 1)
	go func() {
		res, err := e.Run(ctx, spec, c.output())
		done <- outcome{res: res, err: err}
	}()
	returned := false
	defer func() {
		if !returned {
			cancel(executors.ErrCancelled)
			<-done
		}
	}()
	testenv.Eventually(t, testenv.Patience, "the moment to act", func() bool {
		select {
		case o := <-done:
			returned = true
			t.Fatalf("Run returned early: res=%+v err=%v stdout=%q stderr=%q", o.res, o.err, c.stdout.String(), c.stderr.String())
		default:
		}
		return cond()
	})
	acted := time.Now()
	act(cancel)
	o := <-done
	returned = true
	o.after = time.Since(acted)
	return o
}

// assertNoSpool checks that spec's spool is gone from the test server.
func assertNoSpool(t *testing.T, s interface{ Exec(string) (string, error) }, spec executors.Spec) {
	t.Helper()
	if spec.ExecutionID == "" {
		t.Fatal("assertNoSpool: the spec has no execution id")
	}
	out, err := s.Exec(`ls -d /tmp/cronium-` + spoolTag(spec.JobID, spec.ExecutionID) + `.* 2>/dev/null || true`)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("spool remains: %s (err %v)", out, err)
	}
}

// remote runs a shell script on the test server as root.
func remote(t *testing.T, s *testenv.SSHD, script string) string {
	t.Helper()
	out, err := s.Exec(script)
	if err != nil {
		t.Fatalf("exec %q: %v: %s", script, err, out)
	}
	return out
}

// serveEach listens on addr and hands every connection to handle in its
// own goroutine, until the test ends.
func serveEach(t testing.TB, network, addr string, handle func(net.Conn)) net.Listener {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return l
}
