package metrics

import "github.com/prometheus/client_golang/prometheus"

// DanglingKinds are the leftovers the daemon's reconciler removes: job
// containers and SSH spools that no job owns.
var DanglingKinds = []string{"container", "spool"}

type danglingMetrics struct {
	removed *prometheus.CounterVec
}

func newDanglingMetrics() danglingMetrics {
	d := danglingMetrics{removed: counterVec("dangling_removed_total",
		"Job containers and SSH spools that no job owned, removed by the reconciler, by kind.", "kind")}
	for _, k := range DanglingKinds {
		d.removed.WithLabelValues(k)
	}
	return d
}

func (d danglingMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{d.removed}
}

// DanglingRemoved counts n leftovers of kind (DanglingKinds) removed.
func (m *Metrics) DanglingRemoved(kind string, n int) {
	if n > 0 {
		m.dangling.removed.WithLabelValues(oneOf(kind, DanglingKinds, "other")).Add(float64(n))
	}
}
