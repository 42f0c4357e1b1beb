package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a finished job (messages.JobFinished.Outcome).
var Outcomes = []string{"success", "failure", "timeout", "cancelled", "error"}

// Executors that run jobs (jobspec kinds); "unknown" is a job that ended
// before its executor was known.
var Executors = []string{"container", "ssh", "http"}

// jobDurationBuckets span jobs of a tenth of a second to six hours.
var jobDurationBuckets = []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200,
	14400, 21600}

// pickupBuckets: from claim to running is a backend round trip or two,
// longer when the backend is slow or the job waits for credentials.
var pickupBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

type jobMetrics struct {
	received prometheus.Counter
	finished *prometheus.CounterVec
	duration *prometheus.HistogramVec
	pickup   *prometheus.HistogramVec
	retried  prometheus.Counter
	active   prometheus.Gauge
	lines    prometheus.Counter
	bytes    prometheus.Counter
	batches  prometheus.Counter
	dropped  prometheus.Counter
	masked   prometheus.Counter
	cost     costMetrics
}

func newJobMetrics() jobMetrics {
	j := jobMetrics{
		received: counter("jobs_received_total", "Jobs claimed from the backend."),
		finished: counterVec("jobs_finished_total",
			"Jobs whose terminal update was sent, by executor and outcome (success, failure, timeout, cancelled, error).",
			"executor", "outcome"),
		duration: histogramVec("job_duration_seconds",
			"Time from a job's claim to its terminal update, by executor and outcome.", jobDurationBuckets,
			"executor", "outcome"),
		pickup: histogramVec("job_pickup_seconds",
			"Time from a job's claim to its status running, by executor.", pickupBuckets, "executor"),
		retried: counter("job_retries_total", "Attempts begun again by a job's retry policy after its script failed."),
		active:  gauge("jobs_active", "Jobs claimed and not yet finished."),
		lines:   counter("job_output_lines_total", "Lines of job output shipped to the backend."),
		bytes:   counter("job_output_bytes_total", "Bytes of job output shipped to the backend."),
		batches: counter("job_output_batches_total", "Output snapshots (execution updates) shipped to the backend."),
		dropped: counter("job_output_dropped_bytes_total",
			"Bytes of job output left out of what was shipped by the output cap (jobs.output_max_bytes)."),
		masked: counter("job_output_masked_total",
			"Secrets replaced by [MASKED] in job output shipped to the backend (jobs.mask_secrets)."),
		cost: newCostMetrics(),
	}
	for _, e := range Executors {
		j.pickup.WithLabelValues(e)
		for _, o := range Outcomes {
			j.finished.WithLabelValues(e, o)
		}
	}
	return j
}

func (j jobMetrics) collectors() []prometheus.Collector {
	return append([]prometheus.Collector{j.received, j.finished, j.duration, j.pickup, j.retried, j.active, j.lines,
		j.bytes, j.batches, j.dropped, j.masked}, j.cost.collectors()...)
}

// JobReceived implements supervisor.Observer.
func (m *Metrics) JobReceived() { m.jobs.received.Inc() }

// JobRunning implements job.Observer: pickup is claim to running.
func (m *Metrics) JobRunning(executor string, pickup time.Duration) {
	m.jobs.pickup.WithLabelValues(oneOf(executor, Executors, "unknown")).Observe(pickup.Seconds())
}

// JobRetried implements job.Observer.
func (m *Metrics) JobRetried() { m.jobs.retried.Inc() }

// JobFinished implements supervisor.Observer.
func (m *Metrics) JobFinished(executor, outcome string, d time.Duration) {
	e, o := oneOf(executor, Executors, "unknown"), oneOf(outcome, Outcomes, "error")
	m.jobs.finished.WithLabelValues(e, o).Inc()
	m.jobs.duration.WithLabelValues(e, o).Observe(d.Seconds())
}

// JobsActive implements supervisor.Observer.
func (m *Metrics) JobsActive(n int) { m.jobs.active.Set(float64(n)) }

// OutputShipped implements logactor.Observer: one call per snapshot
// shipped, with what it added since the last one.
func (m *Metrics) OutputShipped(lines, bytes, droppedBytes int64) {
	m.jobs.batches.Inc()
	m.jobs.lines.Add(float64(max(lines, 0)))
	m.jobs.bytes.Add(float64(max(bytes, 0)))
	m.jobs.dropped.Add(float64(max(droppedBytes, 0)))
}

// OutputMasked implements logactor.Observer.
func (m *Metrics) OutputMasked(n int) { m.jobs.masked.Add(float64(max(n, 0))) }

// oneOf keeps a label within its known values: a value from outside
// (a new executor, a typo) must not grow the set silently.
func oneOf(v string, known []string, other string) string {
	for _, k := range known {
		if v == k {
			return v
		}
	}
	return other
}
