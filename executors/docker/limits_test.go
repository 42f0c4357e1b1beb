package docker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
)

func TestRunUnprivileged(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Bash, `
id -u
grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status
touch /etc/x 2>/dev/null && echo "root writable" || echo "root read-only"
echo "$HOME" > "$HOME/home-writable" && cat "$HOME/home-writable"
`)
	o := newOutput()
	res, err := d.executor().Run(context.Background(), spec, o.writers())
	mustSucceed(t, res, err, o)
	got := o.stdout.String()
	for _, want := range []string{"65534\n", "CapEff:\t0000000000000000\n", "CapPrm:\t0000000000000000\n",
		"NoNewPrivs:\t1\n", "root read-only\n", "/work\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.HasPrefix(got, "0\n") {
		t.Error("script ran as root")
	}
}

func TestRunOOMKilled(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	spec := d.spec(executors.Python, `
print("allocating", flush=True)
b = b"x" * (256 << 20)
print("survived")
`)
	spec.Resources.MemoryBytes = 32 << 20
	o := newOutput()
	res, err := d.executor().Run(context.Background(), spec, o.writers())
	if err != nil {
		t.Fatal(err)
	}
	if !res.OOMKilled || res.Succeeded() || res.Reason != "killed: out of memory (limit 32 MiB)" {
		t.Errorf("result = %s, reason %q, oom %v", res.Describe(), res.Reason, res.OOMKilled)
	}
	if strings.Contains(o.stdout.String(), "survived") {
		t.Error("the allocation succeeded")
	}
	d.requireNoContainer(spec.ExecutionID)
}

// TestRunForkBombContained: the pids limit keeps the bomb inside the
// container, the timeout ends it and the daemon runs the next job.
func TestRunForkBombContained(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	e := d.executor()
	// The sleep is forked first, so the script outlives the bomb's forks.
	spec := d.spec(executors.Bash, `sleep 600 & s=$!; bomb() { bomb | bomb & }; bomb; wait $s`)
	spec.Resources = executors.Resources{Pids: 32, CPUs: 0.5}
	spec.Timeout = 3 * time.Second
	o := newOutput()
	start := time.Now()
	res, err := e.Run(context.Background(), spec, o.writers())
	if err != nil {
		t.Fatal(err)
	}
	// Only a hang fails this bound: the script would sleep for 10 minutes.
	if took := time.Since(start); took > 3*time.Minute {
		t.Errorf("run took %v", took)
	}
	if !res.TimedOut || res.Succeeded() {
		t.Errorf("fork bomb: %s (%s)", res.Describe(), res.Reason)
	}
	if !strings.Contains(o.stderr.String(), "fork") {
		t.Errorf("no fork failure on stderr: %q", truncate(o.stderr.Bytes(), 300))
	}
	d.requireNoContainer(spec.ExecutionID)

	next := d.spec(executors.Bash, "echo fine")
	o2 := newOutput()
	res, err = e.Run(context.Background(), next, o2.writers())
	mustSucceed(t, res, err, o2)
}

// TestRunContainerConfig checks what the daemon made of the configuration.
func TestRunContainerConfig(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	e := d.executor(func(o *Options) { o.OrchestratorID = "orch-test" })
	spec := d.spec(executors.Bash, "echo ready; sleep 60")
	spec.Resources = executors.Resources{MemoryBytes: 96 << 20, CPUs: 0.5, Pids: 64, DiskBytes: 16 << 20}
	ctx, cancel := context.WithCancelCause(context.Background())
	o := newOutput()
	wait := runAsync(t, ctx, e, spec, o.writers())
	o.stdout.waitContains(t, "ready\n")

	list := d.containers(spec.ExecutionID)
	if len(list) != 1 {
		t.Fatalf("%d containers for the execution", len(list))
	}
	info, err := d.cli.ContainerInspect(context.Background(), list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	cancel(executors.ErrCancelled)
	if res, err := wait(); err != nil || !res.Cancelled {
		t.Errorf("cancel: %+v, %v", res, err)
	}

	labels := info.Config.Labels
	if labels[LabelManaged] != "true" || labels[LabelOrchestrator] != "orch-test" ||
		labels[LabelJob] != spec.JobID || labels[LabelExecution] != spec.ExecutionID {
		t.Errorf("labels = %v", labels)
	}
	h := info.HostConfig
	if h.Memory != 96<<20 || h.MemorySwap != 96<<20 || h.NanoCPUs != 5e8 || h.PidsLimit == nil || *h.PidsLimit != 64 {
		t.Errorf("limits: memory %d swap %d cpus %d pids %v", h.Memory, h.MemorySwap, h.NanoCPUs, h.PidsLimit)
	}
	if h.LogConfig.Type != "local" || !h.ReadonlyRootfs || h.Init == nil || !*h.Init ||
		len(h.CapDrop) != 1 || h.CapDrop[0] != "ALL" || !strings.Contains(h.Tmpfs["/work"], "size=16777216") {
		t.Errorf("host config: log %v ro %v init %v capdrop %v tmpfs %v", h.LogConfig, h.ReadonlyRootfs, h.Init, h.CapDrop, h.Tmpfs)
	}
	if info.Config.User != "65534:65534" || info.Name != "/"+containerName(spec.ExecutionID) {
		t.Errorf("user %q name %q", info.Config.User, info.Name)
	}
	if kv := "CRONIUM_INPUT_FILE=/work/.cronium/input.json"; !slices.Contains(info.Config.Env, kv) {
		t.Errorf("env lacks %s: %q", kv, info.Config.Env)
	}
	d.requireNoContainer(spec.ExecutionID)
}

func TestRunMissingImage(t *testing.T) {
	t.Parallel()
	const img = "cronium/runtime-missing:does-not-exist"
	for _, policy := range []string{config.PullNever, config.PullIfNotPresent} {
		t.Run(policy, func(t *testing.T) {
			d := newDockerEnv(t)
			e := d.executor(func(o *Options) {
				o.PullPolicy = policy
				o.Images = map[executors.Language]string{executors.Bash: img}
				o.PullTimeout = 20 * time.Second
			})
			spec := d.spec(executors.Bash, "echo never")
			_, err := e.Run(context.Background(), spec, executors.Output{})
			if !errors.Is(err, ErrImageMissing) || executors.IsRetryable(err) || !strings.Contains(err.Error(), img) {
				t.Fatalf("err = %v; want ErrImageMissing naming %s, not retryable", err, img)
			}
			hint := map[string]string{config.PullNever: "scripts/build-images.sh", config.PullIfNotPresent: "pull image"}[policy]
			if !strings.Contains(err.Error(), hint) {
				t.Errorf("error %q does not say %q", err, hint)
			}
			t.Logf("error: %v", err)
			d.requireNoContainer(spec.ExecutionID)
		})
	}
}
