package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LiveLineDropReasons are the reasons a live line is dropped (as
// livelines.DropReasons lists them; metrics does not import it).
var LiveLineDropReasons = []string{"overflow", "failed", "rejected"}

// liveLineLatencyBuckets: from print to the server's answer, a
// millisecond on loopback, longer when the queue backs up.
var liveLineLatencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .2, .5, 1, 2.5, 5}

type liveLineMetrics struct {
	sent    prometheus.Counter
	dropped *prometheus.CounterVec
	latency prometheus.Histogram
}

func newLiveLineMetrics() liveLineMetrics {
	l := liveLineMetrics{
		sent: counter("live_lines_sent_total", "Lines of job output sent live to the UI's server (logs.live_url)."),
		dropped: counterVec("live_lines_dropped_total",
			"Live lines not sent, by reason: overflow (the queue was full), failed (no answer or 5xx), rejected (4xx).",
			"reason"),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "live_line_latency_seconds",
			Help: "Time from a line's print to the live-lines server's answer.", Buckets: liveLineLatencyBuckets}),
	}
	for _, r := range LiveLineDropReasons {
		l.dropped.WithLabelValues(r)
	}
	return l
}

func (l liveLineMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{l.sent, l.dropped, l.latency}
}

// LiveLineSent implements livelines.Observer.
func (m *Metrics) LiveLineSent(latency time.Duration) {
	m.liveLines.sent.Inc()
	m.liveLines.latency.Observe(latency.Seconds())
}

// LiveLinesDropped implements livelines.Observer.
func (m *Metrics) LiveLinesDropped(reason string, n int) {
	m.liveLines.dropped.WithLabelValues(oneOf(reason, LiveLineDropReasons, "failed")).Add(float64(max(n, 0)))
}
