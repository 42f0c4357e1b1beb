package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cronium/orchestrator/executors"
)

// peakMemoryBuckets span a shell's few MiB to 16 GiB, by powers of two.
var peakMemoryBuckets = prometheus.ExponentialBuckets(4<<20, 2, 13)

// cpuSecondsBuckets span an echo to six hours of a core.
var cpuSecondsBuckets = []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600}

// costMetrics are what jobs consumed, as their executors measured it
// (executors.Cost): jobs whose figure was not measured are not counted.
type costMetrics struct {
	peakMemory *prometheus.HistogramVec
	cpu        *prometheus.HistogramVec
}

func newCostMetrics() costMetrics {
	c := costMetrics{
		peakMemory: histogramVec("job_peak_memory_bytes",
			"Peak memory of a finished job, by executor: for a container its cgroup's (page cache and tmpfs "+
				"included), sampled about once a second; over SSH the largest resident set of one of its processes.",
			peakMemoryBuckets, "executor"),
		cpu: histogramVec("job_cpu_seconds",
			"User plus system CPU time of a finished job's processes, by executor; for a container as of its "+
				"last stats sample.",
			cpuSecondsBuckets, "executor"),
	}
	for _, e := range Executors {
		c.peakMemory.WithLabelValues(e)
		c.cpu.WithLabelValues(e)
	}
	return c
}

func (c costMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.peakMemory, c.cpu}
}

// JobCost implements job.Observer.
func (m *Metrics) JobCost(executor string, c executors.Cost) {
	e := oneOf(executor, Executors, "unknown")
	if c.PeakMemoryBytes > 0 {
		m.jobs.cost.peakMemory.WithLabelValues(e).Observe(float64(c.PeakMemoryBytes))
	}
	if c.CPUMeasured {
		m.jobs.cost.cpu.WithLabelValues(e).Observe(max(c.CPUSeconds, 0))
	}
}
