package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// BreakerStates a server's circuit breaker can be in besides closed.
var BreakerStates = []string{"open", "half-open"}

type sshMetrics struct {
	conns    prometheus.Gauge
	sessions prometheus.Gauge
	failures *prometheus.CounterVec
	breakers *prometheus.GaugeVec

	mu    sync.Mutex
	state map[string]string // server → breaker state other than closed
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
		state: map[string]string{},
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
// that "how many servers are failing fast" needs no server label.
func (m *Metrics) BreakerChanged(server, _, to string) {
	s := m.ssh
	s.mu.Lock()
	defer s.mu.Unlock()
	if oneOf(to, BreakerStates, "") == "" {
		delete(s.state, server)
	} else {
		s.state[server] = to
	}
	for _, st := range BreakerStates {
		n := 0
		for _, v := range s.state {
			if v == st {
				n++
			}
		}
		s.breakers.WithLabelValues(st).Set(float64(n))
	}
}
