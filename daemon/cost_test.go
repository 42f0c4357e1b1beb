package daemon

import (
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors/docker"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
)

// burn holds 50 MB and burns 0.7 s of CPU.
const burn = `import time
held = bytearray(50 << 20)
for i in range(0, len(held), 4096):
    held[i] = 1
start = time.process_time()
while time.process_time() - start < 0.7:
    pass
print("done", flush=True)
`

// jobCost is the cost in a job's /complete metrics.
type jobCost struct {
	PeakMemoryBytes int64    `json:"peakMemoryBytes"`
	CPUSeconds      *float64 `json:"cpuSeconds"`
	CostSource      string   `json:"costSource"`
}

func costIn(t *testing.T, metrics json.RawMessage) jobCost {
	t.Helper()
	var c jobCost
	if err := json.Unmarshal(metrics, &c); err != nil {
		t.Fatalf("metrics %s: %v", metrics, err)
	}
	return c
}

// What an SSH job cost reaches /complete's metrics, the embedded backend's
// view of the job and the Prometheus histograms (the wrapper on the
// server measures the job once it ends, so nothing here depends on timing).
func TestJobCostEndToEndOverSSH(t *testing.T) {
	srv := testenv.StartSSHD(t, 0)
	s := sshStack(t, []*testenv.SSHD{srv}, daemontest.Listeners)
	req := sshJob(burn, srv)
	req.Script.Type = backend.ScriptPython
	v := s.wait(s.submit(req), testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != backend.StatusCompleted || v.Output.Stdout != "done\n" {
		t.Fatalf("%s %q %q", v.Status, v.Output.Stdout, v.Output.Stderr)
	}
	m := costIn(t, v.Result.Metrics)
	if m.PeakMemoryBytes < 50<<20 || m.CPUSeconds == nil || *m.CPUSeconds < 0.5 || m.CostSource != "rusage" {
		t.Errorf("metrics %s: want peakMemoryBytes >= 50 MB, cpuSeconds >= 0.5, costSource rusage", v.Result.Metrics)
	}
	if c := v.Result.Cost; c == nil || c.PeakMemoryBytes != m.PeakMemoryBytes || c.CPUSeconds == nil ||
		*c.CPUSeconds != *m.CPUSeconds {
		t.Errorf("job view cost %+v, metrics %s", c, v.Result.Metrics)
	} else {
		t.Logf("cost: %s", c)
	}
	s.jobsDone(t)
	text := s.scrape(t)
	p := "cronium_orchestrator_"
	for _, name := range []string{p + "job_peak_memory_bytes_count", p + "job_cpu_seconds_count"} {
		if got := testenv.MetricValue(text, name, "executor", "ssh"); got != 1 {
			t.Errorf("%s{executor=ssh} = %v, want 1", name, got)
		}
		if got := testenv.MetricValue(text, name, "executor", "container"); got != 0 {
			t.Errorf("%s{executor=container} = %v, want 0", name, got)
		}
	}
	if got := testenv.MetricValue(text, p+"job_cpu_seconds_sum", "executor", "ssh"); got < 0.5 {
		t.Errorf("job_cpu_seconds_sum{executor=ssh} = %v", got)
	}
}

// A container job's cost, from its cgroup, reaches /complete's metrics.
// The daemon samples the cgroup about once a second and sends each sample
// to every stream of the container at once: the script waits, after its
// burn, until a stream of the test's own has seen a sample showing it and
// then the next one (a second's margin for the executor's stream, which
// was sent the same samples), and the test then lets it end.
func TestJobCostEndToEndInAContainer(t *testing.T) {
	s, cli := dockerStack(t)
	id := s.submit(script(backend.ScriptPython, burn+`import os
while not os.path.exists("/tmp/go"):
    time.sleep(0.02)
`))
	testenv.Eventually(t, dockerPatience, "the burn to end", func() bool {
		o, _ := s.store.Output(t.Context(), id)
		return o.Stdout == "done\n"
	})
	ctr := runningContainer(t, cli, id)
	awaitSamples(t, cli, ctr, func(st container.StatsResponse) bool {
		return st.CPUStats.CPUUsage.TotalUsage >= 7e8 && max(st.MemoryStats.MaxUsage, st.MemoryStats.Usage) >= 50<<20
	})
	execIn(t, cli, ctr, "touch", "/tmp/go")
	v := s.wait(id, dockerPatience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != backend.StatusCompleted {
		t.Fatalf("%s %q %q", v.Status, v.Output.Stdout, v.Output.Stderr)
	}
	m := costIn(t, v.Result.Metrics)
	if m.PeakMemoryBytes < 50<<20 || m.CPUSeconds == nil || *m.CPUSeconds < 0.5 || m.CostSource != "cgroup-sampled" {
		t.Errorf("metrics %s: want peakMemoryBytes >= 50 MB, cpuSeconds >= 0.5, costSource cgroup-sampled", v.Result.Metrics)
	}
	if v.Result.Cost == nil {
		t.Errorf("no cost in the job view")
	} else {
		t.Logf("cost: %s", v.Result.Cost)
	}
}

// runningContainer is the job's container, once it runs.
func runningContainer(t *testing.T, cli *client.Client, jobID string) string {
	t.Helper()
	var id string
	testenv.Eventually(t, dockerPatience, "the job's container", func() bool {
		list, err := cli.ContainerList(t.Context(), container.ListOptions{
			Filters: filters.NewArgs(filters.Arg("label", docker.LabelJob+"="+jobID))})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 1 {
			id = list[0].ID
		}
		return id != ""
	})
	return id
}

// awaitSamples follows the container's stats until a sample satisfies ok,
// then waits for one more.
func awaitSamples(t *testing.T, cli *client.Client, id string, ok func(container.StatsResponse) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), dockerPatience)
	defer cancel()
	r, err := cli.ContainerStats(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	dec := json.NewDecoder(r.Body)
	seen := false
	for {
		var st container.StatsResponse
		if err := dec.Decode(&st); err != nil {
			t.Fatalf("stats of %s: %v", id, err)
		}
		if st.Read.Year() <= 1 {
			continue
		}
		if seen {
			return
		}
		seen = ok(st)
	}
}

// execIn runs cmd in the container and waits for it.
func execIn(t *testing.T, cli *client.Client, id string, cmd ...string) {
	t.Helper()
	created, err := cli.ContainerExecCreate(t.Context(), id, container.ExecOptions{Cmd: cmd})
	if err != nil {
		t.Fatal(err)
	}
	hj, err := cli.ContainerExecAttach(t.Context(), created.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Close()
	_, _ = io.Copy(io.Discard, hj.Reader)
	if info, err := cli.ContainerExecInspect(t.Context(), created.ID); err != nil || info.ExitCode != 0 {
		t.Fatalf("exec %v: exit code %d, %v", cmd, info.ExitCode, err)
	}
}
