package metrics

import "github.com/prometheus/client_golang/prometheus"

// BreakerStates a server's circuit breaker can be in besides closed.
var BreakerStates = []string{"open", "half-open"}

type sshMetrics struct {
	conns    prometheus.Gauge
	sessions prometheus.Gauge
	failures *prometheus.CounterVec
	breakers *prometheus.GaugeVec
}

func newSSHMetrics() *sshMetrics {
	s := &sshMetrics{
		conns:    gauge("ssh_connections", "Open SSH connections, over all servers."),
		sessions: gauge("ssh_sessions", "SSH sessions (job slots) in use, over all servers."),
		failures: counterVec("ssh_connect_failures_total",
			"Failed SSH connection attempts, by class (unreachable, dns, handshake_timeout, auth, key, host_key, breaker_open, other).",
			"class"),
		breakers: gaugeVec("ssh_breakers",
			"Servers whose circuit breaker is in a state other than closed, by state.", "state"),
	}
	for _, st := range BreakerStates {
		s.breakers.WithLabelValues(st)
	}
	for _, c := range sshFailureClasses {
		s.failures.WithLabelValues(c)
	}
	return s
}

func (s *sshMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.conns, s.sessions, s.failures, s.breakers}
}

// Connections implements ssh.Observer. The server is not a label: the
// set of servers is the users', unbounded.
func (m *Metrics) Connections(_ string, delta int) { m.ssh.conns.Add(float64(delta)) }

// Sessions implements ssh.Observer.
func (m *Metrics) Sessions(_ string, delta int) { m.ssh.sessions.Add(float64(delta)) }

// ConnectFailed implements ssh.Observer.
func (m *Metrics) ConnectFailed(_, class string) {
	m.ssh.failures.WithLabelValues(oneOf(class, sshFailureClasses, "other")).Inc()
}

var sshFailureClasses = []string{"unreachable", "dns", "handshake_timeout", "auth", "key", "host_key",
	"breaker_open", "other"}

// BreakerChanged implements ssh.Observer: it counts servers per state, so
// that "how many servers are failing fast" needs no server label. Each
// call is a real transition of one server's breaker (gobreaker reports
// them in order), so the server leaves from and enters to.
func (m *Metrics) BreakerChanged(_, from, to string) {
	if oneOf(from, BreakerStates, "") != "" {
		m.ssh.breakers.WithLabelValues(from).Dec()
	}
	if oneOf(to, BreakerStates, "") != "" {
		m.ssh.breakers.WithLabelValues(to).Inc()
	}
}
