package ssh

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/cronium/orchestrator/config"
)

// HostKeyPolicy decides what happens to a host key known_hosts does not list.
type HostKeyPolicy string

const (
	// PolicyStrict refuses unknown and changed keys.
	PolicyStrict HostKeyPolicy = "strict"
	// PolicyAcceptNew trusts a server's first key, records it in the
	// known_hosts file and refuses it when it changes later.
	PolicyAcceptNew HostKeyPolicy = "accept-new"
	// PolicyInsecureIgnore accepts any key. Every connection logs a warning.
	PolicyInsecureIgnore HostKeyPolicy = "insecure-ignore"
)

// openSSHMaxSessions is OpenSSH's default MaxSessions. The pool stays below
// it: sshd frees a session only once its command has exited, so a session
// we already closed can still count against the limit for a moment.
const openSSHMaxSessions = 10

// Options configure an Executor. Zero values take the defaults of
// config.Default().SSH.
type Options struct {
	KnownHosts    string
	HostKeyPolicy HostKeyPolicy
	UseAgent      bool
	// AgentSocket is the ssh-agent socket; empty uses SSH_AUTH_SOCK.
	AgentSocket string

	DialTimeout      time.Duration
	HandshakeTimeout time.Duration
	// A connection whose keepalives go unanswered for
	// KeepaliveInterval*KeepaliveMaxMissed is closed as dead.
	KeepaliveInterval  time.Duration
	KeepaliveMaxMissed int

	MaxSessionsPerConn int
	MaxConnsPerServer  int
	IdleTimeout        time.Duration

	BreakerFailures    int
	BreakerOpenTimeout time.Duration
	// ReconnectBackoffMax caps the wait between reconnect attempts of a
	// resumed run; one resumed Run keeps trying for about this long before
	// it hands the decision back to the supervisor with a retryable error.
	ReconnectBackoffMax time.Duration

	// StopGrace is the time between TERM and KILL of a job's process group.
	StopGrace time.Duration
	// RemoteSpoolDir holds each running job's spool on the server. An
	// absolute path without whitespace or shell metacharacters.
	RemoteSpoolDir string
	// OrchestratorID is written into every spool, so that RemoveDangling
	// can tell this orchestrator's spools from those of others sharing
	// the server and user; without it spools carry no owner and are never
	// reconciled.
	OrchestratorID string

	Logger   *slog.Logger
	Observer Observer
}

// Observer receives the pool's events, for metrics. Methods are called
// synchronously from the pool and must not block.
type Observer interface {
	// Connections reports a connection opened (+1) or closed (-1).
	Connections(server string, delta int)
	// Sessions reports session slots taken (+n) or released (-n): a job
	// takes one per session it holds open at once.
	Sessions(server string, delta int)
	// ConnectFailed reports a failed connection attempt and its class
	// (unreachable, dns, handshake_timeout, auth, host_key, breaker_open, ...).
	ConnectFailed(server, class string)
	// BreakerChanged reports a circuit breaker state change (closed,
	// half-open, open).
	BreakerChanged(server, from, to string)
}

type nopObserver struct{}

func (nopObserver) Connections(string, int)               {}
func (nopObserver) Sessions(string, int)                  {}
func (nopObserver) ConnectFailed(string, string)          {}
func (nopObserver) BreakerChanged(string, string, string) {}

// OptionsFromConfig maps the ssh section of the configuration, and the
// job-wide stop grace, to Options. Logger and Observer are left to the
// caller.
func OptionsFromConfig(c config.Config, orchestratorID string) Options {
	s := c.SSH
	return Options{
		KnownHosts:          s.KnownHosts,
		HostKeyPolicy:       HostKeyPolicy(s.HostKeyPolicy),
		UseAgent:            s.UseAgent,
		AgentSocket:         s.AgentSocket,
		DialTimeout:         s.DialTimeout,
		HandshakeTimeout:    s.HandshakeTimeout,
		KeepaliveInterval:   s.KeepaliveInterval,
		KeepaliveMaxMissed:  s.KeepaliveMaxMissed,
		MaxSessionsPerConn:  s.MaxSessionsPerConn,
		MaxConnsPerServer:   s.MaxConnsPerServer,
		IdleTimeout:         s.IdleTimeout,
		BreakerFailures:     s.BreakerFailures,
		BreakerOpenTimeout:  s.BreakerOpenTimeout,
		ReconnectBackoffMax: s.ReconnectBackoffMax,
		StopGrace:           c.Jobs.StopGrace,
		RemoteSpoolDir:      s.RemoteSpoolDir,
		OrchestratorID:      orchestratorID,
	}
}

// withDefaults fills zero values and validates the rest.
func (o Options) withDefaults() (Options, error) {
	d := OptionsFromConfig(config.Default(), "")
	if o.HostKeyPolicy == "" {
		o.HostKeyPolicy = d.HostKeyPolicy
	}
	if o.KnownHosts == "" {
		o.KnownHosts = d.KnownHosts
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur(&o.DialTimeout, d.DialTimeout)
	setDur(&o.HandshakeTimeout, d.HandshakeTimeout)
	setDur(&o.KeepaliveInterval, d.KeepaliveInterval)
	setInt(&o.KeepaliveMaxMissed, d.KeepaliveMaxMissed)
	setInt(&o.MaxSessionsPerConn, d.MaxSessionsPerConn)
	setInt(&o.MaxConnsPerServer, d.MaxConnsPerServer)
	setDur(&o.IdleTimeout, d.IdleTimeout)
	setInt(&o.BreakerFailures, d.BreakerFailures)
	setDur(&o.BreakerOpenTimeout, d.BreakerOpenTimeout)
	setDur(&o.ReconnectBackoffMax, d.ReconnectBackoffMax)
	setDur(&o.StopGrace, d.StopGrace)
	if o.RemoteSpoolDir == "" {
		o.RemoteSpoolDir = d.RemoteSpoolDir
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	return o, o.validate()
}

func (o Options) validate() error {
	var errs []error
	switch o.HostKeyPolicy {
	case PolicyStrict, PolicyAcceptNew, PolicyInsecureIgnore:
	default:
		errs = append(errs, fmt.Errorf("ssh: host_key_policy %q: want strict, accept-new or insecure-ignore", o.HostKeyPolicy))
	}
	if o.MaxSessionsPerConn >= openSSHMaxSessions {
		errs = append(errs, fmt.Errorf("ssh: max_sessions_per_conn %d: must stay below OpenSSH's default MaxSessions %d",
			o.MaxSessionsPerConn, openSSHMaxSessions))
	}
	if !path.IsAbs(o.RemoteSpoolDir) || strings.ContainsAny(o.RemoteSpoolDir, " \t\n'\"\\$`*?[]{}()<>|&;!#~") {
		errs = append(errs, fmt.Errorf("ssh: remote_spool_dir %q: must be an absolute path without whitespace or shell metacharacters",
			o.RemoteSpoolDir))
	}
	return errors.Join(errs...)
}

// keepaliveWindow is how long a connection may stay silent before it is
// declared dead.
func (o Options) keepaliveWindow() time.Duration {
	return o.KeepaliveInterval * time.Duration(o.KeepaliveMaxMissed)
}
