// Package metrics is what operators scrape: actor, job, backend, Docker
// and SSH metrics under one prefix, registered on a registry the caller
// creates (never the global one, so that tests and several daemons in one
// process do not collide).
//
// *Metrics implements the observer interfaces the rest of the code
// declares (supervisor.Observer, backend.Observer, docker.Observer,
// ssh.Observer). No label ever carries a job, execution, actor or server
// id: every label has a small, fixed set of values.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every metric of the orchestrator.
const Namespace = "cronium_orchestrator"

// Metrics holds every metric. Its methods are safe for concurrent use and
// never block.
type Metrics struct {
	actors   actorMetrics
	jobs     jobMetrics
	backend  backendMetrics
	docker   *dockerMetrics
	ssh      *sshMetrics
	dangling danglingMetrics
	helpers  helperMetrics

	liveLines liveLineMetrics
}

// New creates the metrics and registers them on reg. It panics if reg
// already holds them (a programming error, as with prometheus.MustRegister).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		actors:   newActorMetrics(),
		jobs:     newJobMetrics(),
		backend:  newBackendMetrics(),
		docker:   newDockerMetrics(),
		ssh:      newSSHMetrics(),
		dangling: newDanglingMetrics(),
		helpers:  newHelperMetrics(),

		liveLines: newLiveLineMetrics(),
	}
	for _, cs := range [][]prometheus.Collector{m.actors.collectors(), m.jobs.collectors(),
		m.backend.collectors(), m.docker.collectors(), m.ssh.collectors(), m.dangling.collectors(),
		m.helpers.collectors(), m.liveLines.collectors()} {
		reg.MustRegister(cs...)
	}
	return m
}

// NewRegistry returns a registry with the Go runtime and process
// collectors, for a daemon's own metrics to join.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// counterVec, gaugeVec and histogramVec shorten the declarations below;
// every metric gets the namespace.
func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
}

func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, labels)
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help})
}

func histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help,
		Buckets: buckets}, labels)
}
