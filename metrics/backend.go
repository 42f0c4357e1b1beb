package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cronium/orchestrator/backend"
)

// backendRoutes are every route template of the backend client; the
// route label takes no other value. Their retry series exist from the
// start, so that a dashboard shows zero rather than nothing.
var backendRoutes = []string{backend.RouteQueue, backend.RouteAcknowledge, backend.RouteStatus,
	backend.RouteComplete, backend.RouteFail, backend.RouteRelease, backend.RouteOrphaned,
	backend.RouteExecutionCreate, backend.RouteExecutionUpdate, backend.RouteHealth, backend.RouteHeartbeat,
	backend.RouteServerCredentials, backend.RouteVariable, backend.RouteExecutionContext}

// apiBuckets fit HTTP calls and Docker API calls: milliseconds to the
// default 30 s request timeout (and image pulls, up to ten minutes).
var apiBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 600}

type backendMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	retries  *prometheus.CounterVec
}

func newBackendMetrics() backendMetrics {
	b := backendMetrics{
		requests: counterVec("backend_requests_total",
			"HTTP requests to the backend's internal API, by route template, method and status class (2xx, 4xx, 5xx; error: no answer).",
			"route", "method", "code"),
		duration: histogramVec("backend_request_duration_seconds",
			"Latency of one HTTP request to the backend (one attempt), by route template and method.", apiBuckets,
			"route", "method"),
		retries: counterVec("backend_retries_total", "Retried backend requests, by route template.", "route"),
	}
	for _, r := range backendRoutes {
		b.retries.WithLabelValues(r)
	}
	return b
}

func (b backendMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{b.requests, b.duration, b.retries}
}

// ObserveRequest implements backend.Observer; status 0 is a transport
// error. The client promises route templates; anything else (a filled-in
// path would put an id in a label) counts as "other".
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	route = oneOf(route, backendRoutes, "other")
	m.backend.requests.WithLabelValues(route, method, statusClass(status)).Inc()
	m.backend.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

// ObserveRetry implements backend.Observer.
func (m *Metrics) ObserveRetry(route string) {
	m.backend.retries.WithLabelValues(oneOf(route, backendRoutes, "other")).Inc()
}

func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "error"
	}
	return string(rune('0'+status/100)) + "xx"
}
