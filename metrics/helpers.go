package metrics

import "github.com/prometheus/client_golang/prometheus"

// Helpers are the runtime helpers scripts call; "unknown" is any other.
var Helpers = []string{"output", "output-text", "setCondition", "getCondition", "getVariable", "setVariable",
	"event", "unknown"}

// HelperOutcomes: answered, answered "unset", refused for what the script
// asked, failed behind it (the backend).
var HelperOutcomes = []string{"ok", "none", "refused", "failed"}

type helperMetrics struct {
	calls *prometheus.CounterVec
}

func newHelperMetrics() helperMetrics {
	h := helperMetrics{calls: counterVec("helper_calls_total",
		"Runtime helper calls (cronium.*) of jobs' scripts, by helper and outcome.", "helper", "outcome")}
	for _, name := range Helpers {
		for _, o := range HelperOutcomes {
			h.calls.WithLabelValues(name, o)
		}
	}
	return h
}

func (h helperMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{h.calls}
}

// HelperCall implements helpers.Observer.
func (m *Metrics) HelperCall(helper, outcome string) {
	m.helpers.calls.WithLabelValues(oneOf(helper, Helpers, "unknown"), oneOf(outcome, HelperOutcomes, "failed")).Inc()
}
