package docker

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/cronium/orchestrator/executors"
)

func TestOnlyUnpackFailure(t *testing.T) {
	for _, tc := range []struct {
		name, stdout, stderr string
		want                 bool
	}{
		{"tar's complaint and the bootstrap's line", "", "tar: short read\n" + unpackFailed + "\n", true},
		{"the bootstrap's line alone", "", unpackFailed + "\n", true},
		{"without the final newline", "", "tar: short read\n" + unpackFailed, true},
		{"the script printed something", "hello\n", unpackFailed + "\n", false},
		{"other errors before it", "", "oops\n" + unpackFailed + "\n", false},
		{"the line is not last", "", unpackFailed + "\nmore\n", false},
		{"nothing at all", "", "", false},
		{"tar only", "", "tar: short read\n", false},
	} {
		if got := onlyUnpackFailure(tc.stdout, tc.stderr); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestResumeWhileTheUploadIsCut adopts a running container whose bootstrap
// is still reading a script that stopped half-way (the Run uploading it
// died): the resumed Run waits for the bootstrap to give up, removes the
// container and runs the job afresh, instead of reporting tar's complaint
// as the job's result.
func TestResumeWhileTheUploadIsCut(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	logs := newOutput() // a locked buffer
	e := d.executor(func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs.writers().Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.User = "65534:65534" // the default: the check runs as the script's user
		o.DefaultPids = 256
	})
	spec := d.spec(executors.Bash, "# "+strings.Repeat("padding ", 200)+"\necho ran once\n")
	ctx := context.Background()

	// The dead Run: it created, attached, started and sent half the script.
	p, err := e.plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.create(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	hj, err := d.cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Close()
	if err := d.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	if err := writeFiles(&tarball, p.files); err != nil {
		t.Fatal(err)
	}
	if _, err := hj.Conn.Write(tarball.Bytes()[:512+400]); err != nil {
		t.Fatal(err)
	}

	spec.Resume = executors.Resume{Resuming: true, Started: true}
	o := newOutput()
	wait := runAsync(t, ctx, e, spec, o.writers())
	logs.waitFor(t, "the resumed run to see the script missing", func(stdout, _ []byte) bool {
		return bytes.Contains(stdout, []byte("script never arrived (its upload was cut)"))
	})
	hj.Close() // the engine closes stdin, as when the uploading process dies

	res, err := wait()
	mustSucceed(t, res, err, o)
	if o.stdout.String() != "ran once\n" || o.stderr.String() != "" {
		t.Errorf("stdout %q, stderr %q", o.stdout.String(), o.stderr.String())
	}
	if _, err := d.cli.ContainerInspect(ctx, id); err == nil {
		t.Error("the container without its script is still there")
	}
	d.requireNoContainer(spec.ExecutionID)
}
