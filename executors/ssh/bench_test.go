package ssh

import (
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
	defer e.Close()
	out := executors.Output{Stdout: io.Discard, Stderr: io.Discard}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if fresh {
			b.StopTimer()
			_ = e.Close()
			e, _ = New(opts)
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
