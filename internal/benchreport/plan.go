package benchreport

import (
	"regexp"
	"slices"
	"strings"
	"time"
)

// Run is one go test invocation of make bench: benchmark functions of
// one package (found by their name in the tree, so a benchmark that
// moves or is yet to be written needs no change here), an optional
// sub-benchmark filter, and how many iterations (-benchtime Nx).
type Run struct {
	Funcs     []string
	Sub       string        // the part of -bench after the first '/'; "" all
	Benchtime string        // e.g. "40x"
	Timeout   time.Duration // of the go test; the rest of the budget when less
}

// Regex is the run's -bench argument.
func (r Run) Regex() string {
	re := "^(" + strings.Join(r.Funcs, "|") + ")$"
	if r.Sub != "" {
		re += "/" + r.Sub
	}
	return re
}

// Runs is what make bench runs, in order, sized to end within ten minutes
// on two cores (the sums of the timeouts are the worst case). Adding a
// benchmark is adding a row here and its targets below.
var Runs = []Run{
	{Funcs: []string{"BenchmarkPipeline"}, Benchtime: "3000x", Timeout: 2 * time.Minute},
	{Funcs: []string{"BenchmarkPickup"}, Sub: "^long-poll$", Benchtime: "40x", Timeout: 2 * time.Minute},
	{Funcs: []string{"BenchmarkPickup"}, Sub: "^idle$", Benchtime: "1x", Timeout: 2 * time.Minute},
	{Funcs: []string{"BenchmarkSubmitFollow"}, Benchtime: "20x", Timeout: 2 * time.Minute},
	{Funcs: []string{"BenchmarkContainers"}, Benchtime: "40x", Timeout: 5 * time.Minute},
	{Funcs: []string{"BenchmarkJobPooledConnection", "BenchmarkJobFreshConnection", "BenchmarkRawSessionFloor"},
		Benchtime: "20x", Timeout: 2 * time.Minute},
	{Funcs: []string{"BenchmarkJobs200Concurrent"}, Benchtime: "1x", Timeout: 3 * time.Minute},
	{Funcs: []string{"BenchmarkOutput1MLines"}, Benchtime: "1x", Timeout: 2 * time.Minute},
	{Funcs: []string{"BenchmarkLiveLineLatency"}, Benchtime: "200x", Timeout: 2 * time.Minute},
	{Funcs: []string{"BenchmarkInFlight"}, Benchtime: "1x", Timeout: 4 * time.Minute},
}

func ratio(name string, v, base Figure, op Op, goal float64) Target {
	return Target{Name: name, Value: v, Base: &base, Op: op, Goal: goal}
}

func absolute(name string, v Figure, op Op, goal float64, unit string) Target {
	return Target{Name: name, Value: v, Op: op, Goal: goal, Unit: unit}
}

// containerTargets are target 2's lines at one concurrency.
func containerTargets(c string) []Target {
	b := "BenchmarkContainers/c=" + c
	return []Target{
		ratio("containers-c"+c+"-p50", Figure{b, "p50-ms"}, Figure{b, "raw-p50-ms"}, AtMost, 1.10),
		ratio("containers-c"+c+"-p95", Figure{b, "p95-ms"}, Figure{b, "raw-p95-ms"}, AtMost, 1.10),
	}
}

// Targets are issue 10's goals, each on one line of make bench's output.
var Targets = concat(
	[]Target{
		// 1. Pickup.
		absolute("pickup-p50", Figure{"BenchmarkPickup/long-poll", "p50-ms"}, AtMost, 20, "ms"),
		absolute("pickup-idle-traffic", Figure{"BenchmarkPickup/idle", "req/20s"}, AtMost, 1, "requests per 20 s"),
		ratio("submit-follow", Figure{"BenchmarkSubmitFollow", "ms/job"},
			Figure{"BenchmarkSubmitFollow", "docker-run-ms/job"}, AtMost, 1.2),
	},
	// 2. Containers.
	containerTargets("1"), containerTargets("4"), containerTargets("8"),
	[]Target{
		ratio("containers-c8-throughput", Figure{"BenchmarkContainers/c=8", "jobs/s"},
			Figure{"BenchmarkContainers/c=8", "raw-jobs/s"}, AtLeast, 0.9),
		// 3. SSH.
		ratio("ssh-pooled", Figure{"BenchmarkJobPooledConnection", "ns/op"},
			Figure{"BenchmarkRawSessionFloor", "ns/op"}, AtMost, 2),
		ratio("ssh-fresh-connection", Figure{"BenchmarkJobFreshConnection", "ns/op"},
			Figure{"BenchmarkJobPooledConnection", "ns/op"}, AtLeast, 5),
		absolute("ssh-200-concurrent", Figure{"BenchmarkJobs200Concurrent", "refused"}, AtMost, 0, "refused sessions"),
		// 4. Output.
		ratio("output-throughput", Figure{"BenchmarkOutput1MLines", "MB/s"},
			Figure{"BenchmarkOutput1MLines", "raw-MB/s"}, AtLeast, 0.8),
		absolute("output-peak-rss", Figure{"BenchmarkOutput1MLines", "peak-rss-MB"}, AtMost, 100, "MB"),
		absolute("live-lines-p95", Figure{"BenchmarkLiveLineLatency/container", "p95-ms"}, AtMost, 200, "ms"),
		// 5. Pipeline.
		absolute("pipeline-throughput", Figure{"BenchmarkPipeline", "jobs/s"}, AtLeast, 1000, "jobs/s"),
		absolute("inflight-memory", Figure{"BenchmarkInFlight", "bytes/job"}, AtMost, 64<<10, "bytes/job"),
		absolute("inflight-goroutines-left", Figure{"BenchmarkInFlight", "goroutines-left"}, AtMost, 0, "goroutines"),
	},
)

func concat(parts ...[]Target) []Target {
	var out []Target
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// RunOf is the first run that runs the benchmark, or false.
func RunOf(bench string) (Run, bool) {
	fn, sub, _ := strings.Cut(bench, "/")
	for _, r := range Runs {
		if !slices.Contains(r.Funcs, fn) {
			continue
		}
		if r.Sub == "" || sub != "" && regexp.MustCompile(r.Sub).MatchString(strings.SplitN(sub, "/", 2)[0]) {
			return r, true
		}
	}
	return Run{}, false
}
