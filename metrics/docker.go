package metrics

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type dockerMetrics struct {
	calls    *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	running  prometheus.Gauge
	started  prometheus.Counter
	removed  prometheus.Counter
	mu       sync.Mutex
	nRunning int
}

// DockerOps are the Docker API operations the executor reports
// (docker.Observer.APICall); their series exist from the start.
var DockerOps = []string{"create", "start", "attach", "wait", "inspect", "kill", "remove", "logs", "pull",
	"image_inspect", "ping"}

func newDockerMetrics() *dockerMetrics {
	d := &dockerMetrics{
		calls: histogramVec("docker_api_call_duration_seconds",
			"Latency of Docker API calls, by operation (wait, which lasts as long as the container, is left out).",
			apiBuckets, "op"),
		errors: counterVec("docker_api_errors_total", "Failed Docker API calls, by operation.", "op"),
		running: gauge("docker_containers_running",
			"Containers this process started and has not removed yet."),
		started: counter("docker_containers_started_total", "Containers started."),
		removed: counter("docker_containers_removed_total", "Containers removed (started or not)."),
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
	m.docker.addRunning(1)
}

// ContainerRemoved implements docker.Observer. Removals also cover
// containers that never started and ones an earlier process left behind,
// so the running count stops at zero instead of going negative.
func (m *Metrics) ContainerRemoved() {
	m.docker.removed.Inc()
	m.docker.addRunning(-1)
}

func (d *dockerMetrics) addRunning(delta int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nRunning = max(d.nRunning+delta, 0)
	d.running.Set(float64(d.nRunning))
}
