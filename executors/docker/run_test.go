package docker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/cronium/orchestrator/executors"
)

func TestRunSuccessWithOutput(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	e := d.executor()
	spec := d.spec(executors.Bash, `echo "hello $CRONIUM_JOB_ID"; echo "to stderr" >&2; read -r line || echo "stdin: eof"`)
	o := newOutput()
	res, err := e.Run(context.Background(), spec, o.writers())
	mustSucceed(t, res, err, o)
	if want := "hello " + spec.JobID + "\nstdin: eof\n"; o.stdout.String() != want {
		t.Errorf("stdout = %q, want %q", o.stdout.String(), want)
	}
	if o.stderr.String() != "to stderr\n" {
		t.Errorf("stderr = %q", o.stderr.String())
	}
	tm := res.Timings
	requireInOrder(t, "timings", tm.SetupStarted, tm.SetupCompleted, tm.ExecStarted, tm.ExecCompleted,
		tm.CleanupStarted, tm.CleanupCompleted)
	t.Logf("setup %v, exec %v, cleanup %v", tm.SetupCompleted.Sub(tm.SetupStarted),
		tm.ExecCompleted.Sub(tm.ExecStarted), tm.CleanupCompleted.Sub(tm.CleanupStarted))
	d.requireNoContainer(spec.ExecutionID)
}

func TestRunExitCodeAndStderrApart(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Bash, `printf out1; printf err1 >&2; printf out2; printf err2 >&2; exit 3`)
	o := newOutput()
	res, err := d.executor().Run(context.Background(), spec, o.writers())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Exited || res.ExitCode != 3 || res.Succeeded() || res.Reason != "exited with code 3" {
		t.Errorf("result = %+v", res)
	}
	if o.stdout.String() != "out1out2" || o.stderr.String() != "err1err2" {
		t.Errorf("stdout %q stderr %q", o.stdout.String(), o.stderr.String())
	}
	d.requireNoContainer(spec.ExecutionID)
}

func TestRunHundredThousandLines(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Bash, `i=1; while [ $i -le 100000 ]; do echo "line $i of the output"; i=$((i+1)); done`)
	o := newOutput()
	res, err := d.executor().Run(context.Background(), spec, o.writers())
	mustSucceed(t, res, err, o)
	want := lines(100000, "line %d of the output\n")
	got := o.stdout.Bytes()
	if n := bytes.Count(got, []byte("\n")); n != 100000 {
		t.Errorf("%d lines, want 100000", n)
	}
	if sha256.Sum256(got) != sha256.Sum256([]byte(want)) {
		t.Errorf("sha256 differs: got %d bytes, want %d", len(got), len(want))
	}
}

// binaryPayload is output no text encoding survives: UTF-8, invalid UTF-8,
// NUL, CR, lines far beyond and right at Docker's 16 KiB log chunk, and no
// final newline.
func binaryPayload(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	var b bytes.Buffer
	b.WriteString("héllo wörld ✓ 日本語 🎉\n\xff\xfe invalid \xc3\x28 \xe2\x82\n nul:\x00 cr:\r\n")
	for range 100 << 10 { // one long line without a newline
		b.WriteByte(byte(r.IntN(256)) | 0x80)
	}
	b.WriteString("\n")
	// Lines on the log driver's 16 KiB boundaries (see replay.go).
	b.Write(bytes.Repeat([]byte{0xfe}, 2*logChunk))
	b.WriteString("\n")
	b.Write(bytes.Repeat([]byte{0xfd}, logChunk-1))
	b.WriteString("\n")
	for range 50 << 10 {
		b.WriteByte(byte(r.IntN(256)))
	}
	b.WriteString("\xe2\x82") // ends inside a UTF-8 sequence, no newline
	return b.Bytes()
}

// emitScript writes the payloads to stdout and stderr byte for byte.
func emitScript(stdout, stderr []byte, then string) string {
	return fmt.Sprintf("base64 -d <<'EOF'\n%s\nEOF\nbase64 -d >&2 <<'EOF'\n%s\nEOF\n%s\n",
		base64.StdEncoding.EncodeToString(stdout), base64.StdEncoding.EncodeToString(stderr), then)
}

func TestRunBytesPassThroughExactly(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	wantOut, wantErr := binaryPayload(1), binaryPayload(2)
	spec := d.spec(executors.Bash, emitScript(wantOut, wantErr, ""))
	o := newOutput()
	res, err := d.executor().Run(context.Background(), spec, o.writers())
	mustSucceed(t, res, err, o)
	if !bytes.Equal(o.stdout.Bytes(), wantOut) || !bytes.Equal(o.stderr.Bytes(), wantErr) {
		t.Errorf("output differs: stdout %d/%d bytes, stderr %d/%d bytes",
			o.stdout.Len(), len(wantOut), o.stderr.Len(), len(wantErr))
	}
}

func TestRunOneMiBScript(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	script := "echo start\n: '" + strings.Repeat("0123456789abcdef", 1<<16) + "'\necho end\nwc -c < \"$0\"\n"
	spec := d.spec(executors.Bash, script)
	o := newOutput()
	res, err := d.executor().Run(context.Background(), spec, o.writers())
	mustSucceed(t, res, err, o)
	if want := fmt.Sprintf("start\nend\n%d\n", len(script)); o.stdout.String() != want {
		t.Errorf("stdout = %q, want %q", o.stdout.String(), want)
	}
}

func TestRunPythonWithInput(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	// The image is Debian's python3-minimal, which lacks json: read it raw.
	spec := d.spec(executors.Python, `
import os, sys
data = open(os.environ["CRONIUM_INPUT_FILE"], encoding="utf-8").read()
print("input:", data, "env:", os.environ["GREETING"], "same:", os.environ["CRONIUM_INPUT_DATA"] == data)
print("cwd:", os.getcwd(), file=sys.stderr)
sys.exit(5)
`)
	spec.InputData = []byte(`{"name": "ünï"}`)
	spec.Env = map[string]string{"GREETING": "hi"}
	spec.Script.WorkDir = "/work/sub/dir"
	o := newOutput()
	res, err := d.executor().Run(context.Background(), spec, o.writers())
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 5 || o.stdout.String() != "input: {\"name\": \"ünï\"} env: hi same: True\n" || o.stderr.String() != "cwd: /work/sub/dir\n" {
		t.Errorf("result %+v stdout %q stderr %q", res, o.stdout.String(), o.stderr.String())
	}
}

func TestRunNode(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Node, `
const fs = require("fs");
const input = JSON.parse(fs.readFileSync(process.env.CRONIUM_INPUT_FILE, "utf8"));
console.log("node", process.version.startsWith("v"), input.n * 2);
console.error("warn");
`)
	spec.InputData = []byte(`{"n": 21}`)
	o := newOutput()
	res, err := d.executor().Run(context.Background(), spec, o.writers())
	mustSucceed(t, res, err, o)
	if o.stdout.String() != "node true 42\n" || o.stderr.String() != "warn\n" {
		t.Errorf("stdout %q stderr %q", o.stdout.String(), o.stderr.String())
	}
}

func TestRunInvalidSpec(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Bash, "true")
	spec.Script = nil
	_, err := d.executor().Run(context.Background(), spec, executors.Output{})
	if !errors.Is(err, executors.ErrInvalidSpec) || executors.IsRetryable(err) {
		t.Errorf("err = %v, want ErrInvalidSpec, not retryable", err)
	}
}

// TestNoSecretsInLogs: environment values and the script stay out of the
// executor's logs, at debug level too.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	logs := newOutput() // a locked buffer
	e := d.executor(func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs.writers().Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	spec := d.spec(executors.Bash, `echo "secret-script-text" >/dev/null; sleep 60`)
	spec.Env = map[string]string{"API_TOKEN": "s3cr3t-value"}
	spec.Timeout = 500 * time.Millisecond
	res, err := e.Run(context.Background(), spec, executors.Output{})
	if err != nil || !res.TimedOut {
		t.Fatalf("%+v, %v", res, err)
	}
	got := logs.stdout.String()
	if !strings.Contains(got, "timed out") {
		t.Errorf("logs do not show the run: %s", got)
	}
	for _, secret := range []string{"s3cr3t-value", "secret-script-text"} {
		if strings.Contains(got, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	rec := &recorder{}
	e := d.executor(func(o *Options) { o.Observer = rec })
	if err := e.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rec.count("ping") != 1 {
		t.Errorf("ping not observed: %v", rec.calls)
	}
	bad, err := New(Options{Host: "unix:///nonexistent/docker.sock", APITimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Ping(context.Background()); err == nil {
		t.Error("ping of a missing daemon succeeded")
	}
}

// benchOptions are the settings both benchmarks run with.
func benchOptions(o *Options) { o.Logger = nil }

// BenchmarkRun measures a container round trip for a script that does
// nothing: go test -run '^$' -bench 'Run$|RawDockerFloor' -benchtime 20x ./executors/docker
func BenchmarkRun(b *testing.B) {
	d := newDockerEnv(b)
	e := d.executor(benchOptions)
	var setup, exec, cleanup time.Duration
	for b.Loop() {
		res, err := e.Run(context.Background(), d.spec(executors.Bash, "true"), executors.Output{})
		if err != nil || !res.Succeeded() {
			b.Fatalf("%+v, %v", res, err)
		}
		tm := res.Timings
		setup += tm.SetupCompleted.Sub(tm.SetupStarted)
		exec += tm.ExecCompleted.Sub(tm.ExecStarted)
		cleanup += tm.CleanupCompleted.Sub(tm.CleanupStarted)
	}
	n := float64(b.N) * float64(time.Millisecond)
	b.ReportMetric(float64(setup)/n, "setup-ms/op")
	b.ReportMetric(float64(exec)/n, "exec-ms/op")
	b.ReportMetric(float64(cleanup)/n, "cleanup-ms/op")
}

// BenchmarkRawDockerFloor is the floor BenchmarkRun is measured against:
// the container the executor plans for the same job (image, user, limits,
// network, tmpfs, log driver, init, labels), running "true" in place of
// the bootstrap, created, started, waited for and removed through the raw
// API. What it leaves out is what the executor adds: attach, script
// delivery over stdin, the exit status inspect and the bookkeeping.
func BenchmarkRawDockerFloor(b *testing.B) {
	d := newDockerEnv(b)
	e := d.executor(benchOptions)
	cli := d.cli
	ctx := context.Background()
	for b.Loop() {
		p, err := e.plan(d.spec(executors.Bash, "true"))
		if err != nil {
			b.Fatal(err)
		}
		cfg := *p.config
		cfg.Entrypoint, cfg.Cmd = nil, []string{"true"}
		cfg.AttachStdin, cfg.AttachStdout, cfg.AttachStderr, cfg.OpenStdin, cfg.StdinOnce = false, false, false, false, false
		c, err := cli.ContainerCreate(ctx, &cfg, p.host, nil, nil, p.name)
		if err != nil {
			b.Fatal(err)
		}
		if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			b.Fatal(err)
		}
		waitC, errC := cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
		select {
		case r := <-waitC:
			if r.StatusCode != 0 {
				b.Fatalf("exit code %d", r.StatusCode)
			}
		case err := <-errC:
			b.Fatal(err)
		}
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// requireInOrder fails unless every time is set and none is before the one
// listed ahead of it.
func requireInOrder(t *testing.T, what string, times ...time.Time) {
	t.Helper()
	for i, tm := range times {
		if tm.IsZero() {
			t.Errorf("%s: time %d of %d is not set: %v", what, i+1, len(times), times)
		} else if i > 0 && tm.Before(times[i-1]) {
			t.Errorf("%s: time %d (%v) is before time %d (%v)", what, i+1, tm, i, times[i-1])
		}
	}
}
