package daemon

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors/docker"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/messages"
)

// End to end with real Docker: the embedded backend over HTTP, the daemon
// with its real Docker executor, the runtime images built from Debian
// packages (scripts/build-images.sh).

// dockerPatience bounds the wait for a Docker job: a loaded machine
// running a dozen containers at once takes a while.
const dockerPatience = 5 * time.Minute

func dockerStack(t *testing.T, opts ...stackOption) (*stack, *client.Client) {
	t.Helper()
	cli := testenv.Docker(t)
	for _, img := range []string{config.Default().Docker.ImageBash, config.Default().Docker.ImagePython} {
		if _, err := cli.ImageInspect(t.Context(), img); err != nil {
			testenv.Unavailable(t, "image %s (run scripts/build-images.sh all): %v", img, err)
		}
	}
	base := func(c *config.Config) {
		c.Docker.PullPolicy = config.PullNever // no registry here
		c.Docker.NetworkMode = "none"
		c.Jobs.StopGrace = time.Second
	}
	return startStack(t, nil, append([]stackOption{base}, opts...)...), cli
}

// script is a job; its timeout (10m) is for a job that must not time
// out, however slow the machine.
func script(lang, content string, mutate ...func(*embedded.SubmitRequest)) embedded.SubmitRequest {
	r := embedded.SubmitRequest{Script: &backend.Script{Type: lang, Content: content}, Timeout: "10m"}
	for _, m := range mutate {
		m(&r)
	}
	return r
}

func sha(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }

func TestDockerJobsEndToEnd(t *testing.T) {
	s, cli := dockerStack(t)
	seq := func(n int) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&b, "%d\n", i)
		}
		return b.String()
	}
	big := "#" + strings.Repeat("x", 1<<20) + "\necho done\n"
	tests := []struct {
		name     string
		req      embedded.SubmitRequest
		status   string
		exitCode int
		stdout   string
		stderr   string // exact, or a fragment when contains is set
		contains bool
	}{
		{name: "success", req: script("BASH", "echo hello; echo world"), status: "completed", stdout: "hello\nworld\n"},
		{name: "exit code and stderr apart", req: script("BASH", "echo out; echo err >&2; exit 3"),
			status: "failed", exitCode: 3, stdout: "out\n", stderr: "err\n[cronium] exited with code 3\n"},
		{name: "100000 lines", req: script("BASH", "seq 1 100000"), status: "completed", stdout: seq(100000)},
		{name: "unicode and invalid utf-8", req: script("BASH", `printf 'héllo 世界 🚀\n'; printf '\xff\xfe bad \x00 nul\n'`),
			status: "completed", stdout: "héllo 世界 🚀\n\uFFFD\uFFFD bad \uFFFD nul\n"},
		{name: "1 MiB script", req: script("BASH", big), status: "completed", stdout: "done\n"},
		{name: "not root, no capabilities", req: script("BASH", "id -u; grep CapEff /proc/self/status"),
			status: "completed", stdout: "65534\nCapEff:\t0000000000000000\n"},
		{name: "environment and input", req: script("BASH", `echo "$REPORT_DAYS ${#CRONIUM_JOB_ID}"; cat "$CRONIUM_INPUT_FILE"; echo; echo "$CRONIUM_INPUT_DATA"`,
			func(r *embedded.SubmitRequest) {
				r.Environment = map[string]string{"REPORT_DAYS": "7"}
				r.InputData = []byte(`{"orderId":1234}`)
			}), status: "completed", stdout: "7 16\n{\"orderId\":1234}\n{\"orderId\":1234}\n"},
		{name: "python", req: script("PYTHON", "import sys\nprint('py', 6*7)\nprint('warn', file=sys.stderr)"),
			status: "completed", stdout: "py 42\n", stderr: "warn\n"},
		{name: "node", req: script("NODEJS", "console.log('node', 6*7)"), status: "completed", stdout: "node 42\n"},
		{name: "oom named", req: script("BASH", `x=a; while :; do x=$x$x; done`, func(r *embedded.SubmitRequest) {
			r.Resources = &backend.Resources{MemoryLimit: 32 << 20}
		}), status: "failed", exitCode: 137, stderr: "out of memory", contains: true},
		// Long enough for the echo however slow the machine; the timeout
		// counts from the container's start.
		{name: "timeout", req: script("BASH", "echo started; sleep 300", func(r *embedded.SubmitRequest) { r.Timeout = "15s" }),
			status: "failed", exitCode: -1, stdout: "started\n", stderr: "timed out", contains: true},
	}
	ids := map[string]string{}
	for _, tt := range tests {
		ids[tt.name] = s.submit(tt.req)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := s.wait(ids[tt.name], dockerPatience)
			s.assertOneTerminalUpdate(t, v)
			if v.Status != tt.status || v.Result.ExitCode == nil || *v.Result.ExitCode != tt.exitCode {
				t.Fatalf("status %s exit %v, want %s %d; stderr %q", v.Status, v.Result.ExitCode, tt.status, tt.exitCode, v.Output.Stderr)
			}
			if sha(v.Output.Stdout) != sha(tt.stdout) {
				t.Fatalf("stdout: %d bytes, %d lines, want %d bytes: %.200q",
					len(v.Output.Stdout), strings.Count(v.Output.Stdout, "\n"), len(tt.stdout), v.Output.Stdout)
			}
			if tt.contains && !strings.Contains(v.Output.Stderr, tt.stderr) || !tt.contains && v.Output.Stderr != tt.stderr {
				t.Fatalf("stderr %q, want %q", v.Output.Stderr, tt.stderr)
			}
			assertNoContainer(t, cli, v.ID)
		})
	}
	if v, _ := s.store.Job(t.Context(), ids["timeout"]); v.Result.Status != embedded.StatusTimeout {
		t.Errorf("timeout shows as %s in the UI, want TIMEOUT", v.Result.Status)
	}
}

func TestDockerForkBombIsContained(t *testing.T) {
	s, cli := dockerStack(t)
	id := s.submit(script("BASH", `bomb() { bomb | bomb & }; bomb; sleep 3; echo survived`, func(r *embedded.SubmitRequest) {
		r.Resources = &backend.Resources{PidsLimit: 64}
		r.Timeout = "20s"
	}))
	v := s.wait(id, dockerPatience)
	s.assertOneTerminalUpdate(t, v)
	assertNoContainer(t, cli, id)
	// The machine is fine: the next job runs normally.
	after := s.wait(s.submit(script("BASH", "echo fine")), dockerPatience)
	if after.Status != "completed" || after.Output.Stdout != "fine\n" {
		t.Fatalf("after the fork bomb: %s %q", after.Status, after.Output.Stdout)
	}
}

func TestDockerCancellation(t *testing.T) {
	s, cli := dockerStack(t)
	id := s.submit(script("BASH", "echo started; sleep 3600"))
	testenv.Eventually(t, dockerPatience, "job started", func() bool {
		o, _ := s.store.Output(t.Context(), id)
		return o.Stdout == "started\n"
	})
	if err := s.store.Cancel(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	v := s.wait(id, dockerPatience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "cancelled" || v.Result.Status != embedded.StatusCancelled {
		t.Fatalf("%s / %s", v.Status, v.Result.Status)
	}
	assertNoContainer(t, cli, id)
}

func TestDockerMissingImageIsAClearError(t *testing.T) {
	s, _ := dockerStack(t, func(c *config.Config) { c.Docker.ImagePython = "cronium/does-not-exist:1" })
	v := s.wait(s.submit(script("PYTHON", "print(1)")), dockerPatience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "failed" || !strings.Contains(v.Output.Stderr, "cronium/does-not-exist:1") {
		t.Fatalf("%s: %q", v.Status, v.Output.Stderr)
	}
}

// A JobActor crashed mid-job re-attaches to its container: every line
// once, the container started once, one terminal update.
func TestDockerCrashedJobActorReattaches(t *testing.T) {
	s, cli := dockerStack(t)
	starts := testenv.WatchStarts(t, cli, docker.LabelJob)
	id := s.submit(script("BASH", `for i in $(seq 1 40); do echo "line $i"; sleep 0.05; done`))
	testenv.Eventually(t, dockerPatience, "output to flow", func() bool {
		o, _ := s.store.Output(t.Context(), id)
		return strings.Count(o.Stdout, "\n") >= 5
	})
	s.daemon.Engine().Send(s.jobPID(id), messages.Crash{Reason: "test"})
	v := s.wait(id, dockerPatience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "completed" || v.Output.Stdout != lines(40) {
		t.Fatalf("%s: %q", v.Status, v.Output.Stdout)
	}
	if n := starts.Count(id); n != 1 {
		t.Fatalf("the job's container started %d times, want 1", n)
	}
}

// assertNoContainer waits for the job's containers to be gone: the job's
// actor removes an exited container after it sent the completion (see
// Spec.KeepFinished), so the backend can show the job ended a moment before.
func assertNoContainer(t *testing.T, cli *client.Client, jobID string) {
	t.Helper()
	gone := func() bool {
		list, err := cli.ContainerList(t.Context(), container.ListOptions{All: true,
			Filters: filters.NewArgs(filters.Arg("label", docker.LabelJob+"="+jobID))})
		if err != nil {
			t.Fatal(err)
		}
		return len(list) == 0
	}
	testenv.Eventually(t, dockerPatience, fmt.Sprintf("job %s's containers removed", jobID), gone)
}
