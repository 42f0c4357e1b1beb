package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/helpers"
	"github.com/cronium/orchestrator/internal/testenv"
)

// benchRun runs one "true" job per iteration. fresh closes the pool between
// jobs, so that each one pays for TCP, key exchange and authentication.
func benchRun(b *testing.B, fresh bool, script string) {
	s := sharedSSHD(b)
	opts := testOptions(b, s)
	opts.Logger = nil
	e, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() }) // the last executor, when fresh
	out := executors.Output{Stdout: io.Discard, Stderr: io.Discard}
	for i := 0; b.Loop(); i++ {
		if fresh {
			b.StopTimer()
			_ = e.Close()
			if e, err = New(opts); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		spec := executors.Spec{ExecutionID: "bench-" + b.Name() + "-" + strconv.Itoa(i),
			Script: &executors.Script{Language: executors.Bash, Content: script}, Servers: []executors.Server{keyServer(s)}}
		res, err := e.Run(context.Background(), spec, out)
		if err != nil || !res.Succeeded() {
			b.Fatalf("res=%+v err=%v", res, err)
		}
	}
}

func BenchmarkJobPooledConnection(b *testing.B) { benchRun(b, false, "true") }
func BenchmarkJobFreshConnection(b *testing.B)  { benchRun(b, true, "true") }

// BenchmarkJobs200Concurrent starts 200 short jobs at once on one server
// through one executor, as the daemon does with a capacity of 200: each
// with its runtime helpers, as every script job of the daemon has. The pool
// must queue them within its connections and sessions, so that sshd
// refuses none. "refused" counts the jobs that failed because the server
// refused a session or a connection (any other failure fails the
// benchmark); "session-retries" the refusals the pool absorbed;
// "ms/job-wall" is the wall time from the first start to the last end.
func BenchmarkJobs200Concurrent(b *testing.B) {
	const jobs = 200
	s := sharedSSHD(b)
	opts := testOptions(b, s)
	var retries atomic.Int64
	opts.Logger = slog.New(retryCounter{Handler: slog.Default().Handler(), n: &retries})
	var conns peakConns
	opts.Observer = &conns
	e, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	var refused int
	var wall time.Duration
	for i := 0; b.Loop(); i++ {
		var wg sync.WaitGroup
		errs := make([]error, jobs)
		start := time.Now()
		for n := range jobs {
			wg.Go(func() {
				errs[n] = runEcho(e, s, fmt.Sprintf("bench-200-%d-%d-%d", start.UnixNano(), i, n), n)
			})
		}
		wg.Wait()
		wall += time.Since(start)
		// Ifs, not a switch: a case that calls a function, in b.Loop's
		// body, crashes go1.26.8's compiler (escape analysis).
		for n, err := range errs {
			if err == nil {
				continue
			}
			if !refusedBySSHD(err) {
				b.Fatalf("job %d: %v", n, err)
			}
			refused++
			b.Logf("job %d refused: %v", n, err)
		}
	}
	b.ReportMetric(float64(refused), "refused")
	b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "ms/job-wall")
	b.ReportMetric(float64(jobs*b.N)/wall.Seconds(), "jobs/s")
	b.ReportMetric(float64(conns.peak.Load()), "peak-conns")
	b.ReportMetric(float64(retries.Load()), "session-retries")
}

// runEcho runs "echo n" with helpers and checks that it printed exactly that.
func runEcho(e *Executor, s *testenv.SSHD, id string, n int) error {
	h, err := helpers.New(helpers.Config{Backend: &testenv.Variables{}, ExecutionID: id}, helpers.Saved{})
	if err != nil {
		return err
	}
	spec := executors.Spec{ExecutionID: id, Script: &executors.Script{Language: executors.Bash,
		Content: "echo " + strconv.Itoa(n)}, Servers: []executors.Server{keyServer(s)}, Helpers: h}
	var stdout, stderr syncBuffer
	res, err := e.Run(context.Background(), spec, executors.Output{Stdout: &stdout, Stderr: &stderr})
	want := strconv.Itoa(n) + "\n"
	switch {
	case err != nil:
		return err
	case !res.Succeeded():
		return fmt.Errorf("job did not succeed: %+v (stderr %q)", res, stderr.String())
	case stdout.String() != want:
		return fmt.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	return nil
}

// refusedBySSHD tells a job the server turned away from one that failed
// otherwise. A refused session reaches the job as text (the lost
// connection's error formats its cause), hence the messages.
func refusedBySSHD(err error) bool {
	if errors.As(err, new(*xssh.OpenChannelError)) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, errClosedInAuth) || errors.Is(err, ErrBreakerOpen) {
		return true
	}
	for _, s := range []string{"ssh: rejected:", "administratively prohibited", "connection reset",
		"before the handshake completed"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

// peakConns is an Observer that keeps the most connections open at once.
type peakConns struct {
	nopObserver
	open, peak atomic.Int64
}

func (p *peakConns) Connections(_ string, delta int) {
	n := p.open.Add(int64(delta))
	for {
		old := p.peak.Load()
		if n <= old || p.peak.CompareAndSwap(old, n) {
			return
		}
	}
}

// retryCounter counts the sessions sshd refused and lease.newSession
// opened again, which only its debug log tells; it passes records from
// Info up to Handler.
type retryCounter struct {
	slog.Handler
	n *atomic.Int64
}

func (c retryCounter) Enabled(context.Context, slog.Level) bool { return true }

func (c retryCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "ssh: server refused a session, retrying" {
		c.n.Add(1)
	}
	if r.Level < slog.LevelInfo {
		return nil
	}
	return c.Handler.Handle(ctx, r)
}

func (c retryCounter) WithAttrs(a []slog.Attr) slog.Handler {
	return retryCounter{Handler: c.Handler.WithAttrs(a), n: c.n}
}

func (c retryCounter) WithGroup(g string) slog.Handler {
	return retryCounter{Handler: c.Handler.WithGroup(g), n: c.n}
}

// BenchmarkOutput100MB streams 100 MB of output through the spool.
func BenchmarkOutput100MB(b *testing.B) {
	b.SetBytes(100e6)
	benchRun(b, false, "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 100000000")
}

// BenchmarkRawSessionFloor is the floor BenchmarkJobPooledConnection is
// measured against: a bare session running "true" on an open connection,
// with none of the spool, detaching or resume machinery.
func BenchmarkRawSessionFloor(b *testing.B) {
	s := sharedSSHD(b)
	signer, err := xssh.ParsePrivateKey([]byte(s.Key))
	if err != nil {
		b.Fatal(err)
	}
	client, err := xssh.Dial("tcp", s.Addr, &xssh.ClientConfig{User: s.User,
		Auth: []xssh.AuthMethod{xssh.PublicKeys(signer)}, HostKeyCallback: xssh.FixedHostKey(s.HostKey)})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	for b.Loop() {
		sess, err := client.NewSession()
		if err != nil {
			b.Fatal(err)
		}
		if err := sess.Run("true"); err != nil {
			b.Fatal(err)
		}
		sess.Close()
	}
}

// BenchmarkPrefixer feeds 32 KiB chunks of 64-byte lines through one
// server's line prefixer of a multi-server job.
func BenchmarkPrefixer(b *testing.B) {
	line := bytes.Repeat([]byte("x"), 63)
	line = append(line, '\n')
	chunk := bytes.Repeat(line, 512)
	sink := &multiSink{out: executors.Output{Stdout: io.Discard, Stderr: io.Discard}, mp: &multiProgress{}}
	p := &prefixer{sink: sink, prefix: "[web1] "}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFramePayload reads O frames of 4 KiB, the size remote.sh sends
// while output flows, through the frame reader.
func BenchmarkFramePayload(b *testing.B) {
	payload := bytes.Repeat([]byte("y"), 4096)
	var one bytes.Buffer
	one.WriteString("O " + strconv.Itoa(len(payload)) + "\n")
	one.Write(payload)
	stream := bytes.Repeat(one.Bytes(), 256)
	var n int64
	w := &counter{w: io.Discard, n: &n} // what Run writes to: no ReaderFrom
	b.SetBytes(int64(len(payload) * 256))
	b.ReportAllocs()
	for b.Loop() {
		fr := newFrameReader(bytes.NewReader(stream), "")
		for range 256 {
			f, err := fr.next()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := fr.payload(w, f.n); err != nil {
				b.Fatal(err)
			}
		}
	}
}
