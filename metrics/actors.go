package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cronium/orchestrator/messages"
)

// messageBuckets fit actor work: microseconds for most messages, up to
// seconds for a message that waited behind a restart delay.
var messageBuckets = []float64{1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, .01, .05, .1, .5, 1, 5}

type actorMetrics struct {
	live      *prometheus.GaugeVec
	spawns    *prometheus.CounterVec
	stops     *prometheus.CounterVec
	restarts  *prometheus.CounterVec
	exhausted *prometheus.CounterVec
	dead      prometheus.Counter
	handling  *prometheus.HistogramVec
	wait      *prometheus.HistogramVec
	mailboxes *mailboxCollector
}

func newActorMetrics() actorMetrics {
	a := actorMetrics{
		live: gaugeVec("actors", "Live actors, by kind.", "kind"),
		spawns: counterVec("actor_spawns_total",
			"Actors spawned by the supervisor (respawns after a kill included), by kind.", "kind"),
		stops: counterVec("actor_stops_total", "Actors that stopped, by kind.", "kind"),
		restarts: counterVec("actor_restarts_total",
			"Actor restarts: crashes restarted in place and actors respawned after being stopped from outside, by kind.",
			"kind"),
		exhausted: counterVec("actor_restart_budget_exhausted_total",
			"Times an actor used up its restart budget (supervisor.max_restarts per supervisor.restart_window), by kind.",
			"kind"),
		dead: counter("actor_dead_letters_total", "Messages sent to actors that no longer exist."),
		handling: histogramVec("actor_message_handling_seconds",
			"Time an actor spent handling one message, by actor kind and message type.", messageBuckets,
			"kind", "message"),
		wait: histogramVec("actor_mailbox_wait_seconds",
			"Time a message waited in an actor's mailbox, from send to handling, by actor kind and message type.",
			messageBuckets, "kind", "message"),
		mailboxes: newMailboxCollector(),
	}
	// Every kind's series exist from the start, at zero.
	for _, k := range messages.ActorKinds {
		a.live.WithLabelValues(k)
		a.spawns.WithLabelValues(k)
		a.stops.WithLabelValues(k)
		a.restarts.WithLabelValues(k)
		a.exhausted.WithLabelValues(k)
	}
	return a
}

func (a actorMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{a.live, a.spawns, a.stops, a.restarts, a.exhausted, a.dead, a.handling,
		a.wait, a.mailboxes}
}

// MessageHandled implements kit.Observer.
func (m *Metrics) MessageHandled(kind, msgType string, handling, queued time.Duration) {
	m.actors.handling.WithLabelValues(kind, msgType).Observe(handling.Seconds())
	// Unstamped messages (lifecycle events, requests) report no wait.
	if queued > 0 {
		m.actors.wait.WithLabelValues(kind, msgType).Observe(queued.Seconds())
	}
}

// ActorSpawned implements supervisor.Observer.
func (m *Metrics) ActorSpawned(kind string) {
	m.actors.spawns.WithLabelValues(kind).Inc()
	m.actors.live.WithLabelValues(kind).Inc()
}

// ActorStopped implements supervisor.Observer.
func (m *Metrics) ActorStopped(kind string) {
	m.actors.stops.WithLabelValues(kind).Inc()
	m.actors.live.WithLabelValues(kind).Dec()
}

// ActorRestarted implements supervisor.Observer.
func (m *Metrics) ActorRestarted(kind string) { m.actors.restarts.WithLabelValues(kind).Inc() }

// RestartBudgetExhausted implements supervisor.Observer.
func (m *Metrics) RestartBudgetExhausted(kind string) { m.actors.exhausted.WithLabelValues(kind).Inc() }

// DeadLetter implements supervisor.Observer.
func (m *Metrics) DeadLetter() { m.actors.dead.Inc() }

// WatchMailboxes sets where mailbox depths are read at each scrape
// (kit.MailboxDepths in the daemon). Until it is called the metric reports
// zero for every kind.
func (m *Metrics) WatchMailboxes(depths func() map[string]int64) {
	m.actors.mailboxes.source.Store(&depths)
}

// mailboxCollector reads mailbox depths when scraped: they change with
// every message, far more often than anyone looks.
type mailboxCollector struct {
	desc   *prometheus.Desc
	source atomic.Pointer[func() map[string]int64]
}

func newMailboxCollector() *mailboxCollector {
	return &mailboxCollector{desc: prometheus.NewDesc(Namespace+"_actor_mailbox_messages",
		"Messages waiting in actors' mailboxes, by actor kind (messages sent with kit.Send; hollywood exposes no inbox length).",
		[]string{"kind"}, nil)}
}

func (c *mailboxCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *mailboxCollector) Collect(ch chan<- prometheus.Metric) {
	depths := map[string]int64{}
	if f := c.source.Load(); f != nil {
		depths = (*f)()
	}
	// Only the known kinds: a label's values stay a fixed set.
	for _, kind := range messages.ActorKinds {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(max(depths[kind], 0)), kind)
	}
}
