package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type dockerMetrics struct {
	calls   *prometheus.HistogramVec
	errors  *prometheus.CounterVec
	running prometheus.Gauge
	started prometheus.Counter
	removed prometheus.Counter
}

// DockerOps are the Docker API operations the executor reports
// (docker.Observer.APICall); their series exist from the start.
var DockerOps = []string{"create", "start", "attach", "wait", "inspect", "kill", "remove", "logs", "pull",
	"image_inspect", "ping", "list"}

func newDockerMetrics() *dockerMetrics {
	d := &dockerMetrics{
		calls: histogramVec("docker_api_call_duration_seconds",
			"Latency of Docker API calls, by operation (wait, which lasts as long as the container, is left out).",
			apiBuckets, "op"),
		errors: counterVec("docker_api_errors_total", "Failed Docker API calls, by operation.", "op"),
		running: gauge("docker_containers_running",
			"Containers this process started and has not removed yet."),
		started: counter("docker_containers_started_total", "Containers started."),
		removed: counter("docker_containers_removed_total", "Containers this process started and removed."),
	}
	for _, op := range DockerOps {
		d.errors.WithLabelValues(op)
		if op != "wait" {
			d.calls.WithLabelValues(op)
		}
	}
	return d
}

func (d *dockerMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{d.calls, d.errors, d.running, d.started, d.removed}
}

// APICall implements docker.Observer. A cancelled call (a job cancelled
// or detached) is not a Docker failure.
func (m *Metrics) APICall(op string, d time.Duration, err error) {
	op = oneOf(op, DockerOps, "other")
	if op != "wait" {
		m.docker.calls.WithLabelValues(op).Observe(d.Seconds())
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		m.docker.errors.WithLabelValues(op).Inc()
	}
}

// ContainerStarted implements docker.Observer.
func (m *Metrics) ContainerStarted() {
	m.docker.started.Inc()
	m.docker.running.Inc()
}

// ContainerRemoved implements docker.Observer, which reports only
// containers it reported started: the running count cannot go negative.
func (m *Metrics) ContainerRemoved() {
	m.docker.removed.Inc()
	m.docker.running.Dec()
}
