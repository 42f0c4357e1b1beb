package ssh

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"testing"

	xssh "golang.org/x/crypto/ssh"

	"github.com/cronium/orchestrator/executors"
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
