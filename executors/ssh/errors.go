package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/cronium/orchestrator/executors"
)

// One sentinel per failure class. Messages built around them name the
// server and the cause, never key material, passwords or environment values.
var (
	ErrKeyParse         = errors.New("ssh: private key cannot be parsed")
	ErrPassphrase       = errors.New("ssh: private key passphrase")
	ErrNoCredentials    = errors.New("ssh: no credentials")
	ErrAuthRejected     = errors.New("ssh: authentication rejected")
	ErrUnreachable      = errors.New("ssh: server unreachable")
	ErrDNS              = errors.New("ssh: host name does not resolve")
	ErrHandshakeTimeout = errors.New("ssh: handshake timed out")
	ErrHostKeyUnknown   = errors.New("ssh: host key unknown")
	ErrHostKeyChanged   = errors.New("ssh: host key changed")
	ErrBreakerOpen      = errors.New("ssh: circuit breaker open")
	// errClosedInAuth is an ErrAuthRejected that may be transient: the
	// server closed the connection during authentication, which it does
	// when it refuses, but also when its process for the connection dies.
	errClosedInAuth = fmt.Errorf("%w: connection closed", ErrAuthRejected)
	// ErrConnLost means the connection dropped while a job was running on
	// it. It comes wrapped in executors.Retryable: the job may live on.
	ErrConnLost = errors.New("ssh: connection lost")
	// ErrRemote means the server-side helper failed (no spool directory,
	// truncated upload, ...).
	ErrRemote = errors.New("ssh: remote setup failed")
	ErrClosed = errors.New("ssh: executor closed")
	// ErrServersUnknown means Abandon was given no servers (an orphan of
	// an earlier process, whose servers were not recorded): nothing could
	// be stopped.
	ErrServersUnknown = fmt.Errorf("ssh: servers unknown: %w", executors.ErrTargetUnknown)
)

// HostKeyError is a refused host key. It unwraps to ErrHostKeyUnknown or
// ErrHostKeyChanged.
type HostKeyError struct {
	Addr string
	// Presented is the SHA256 fingerprint of the key the server showed.
	Presented string
	KeyType   string
	// Expected are the fingerprints known_hosts or the pins allow.
	Expected []string
	// Source is the known_hosts path, or "pinned fingerprints".
	Source  string
	Changed bool
}

func (e *HostKeyError) Error() string {
	if !e.Changed {
		return fmt.Sprintf("ssh: host key of %s is unknown: the server presented %s %s, which %s does not list; "+
			"verify it and add it, or use host_key_policy accept-new", e.Addr, e.KeyType, e.Presented, e.Source)
	}
	return fmt.Sprintf("ssh: host key of %s has CHANGED: the server presented %s %s, %s expects %s; "+
		"refusing to connect (possible man-in-the-middle)", e.Addr, e.KeyType, e.Presented, e.Source,
		strings.Join(e.Expected, " or "))
}

func (e *HostKeyError) Unwrap() error {
	if e.Changed {
		return ErrHostKeyChanged
	}
	return ErrHostKeyUnknown
}

// classError gives a sentinel a message with context while errors.Is still
// finds the sentinel.
type classError struct {
	class error
	msg   string
}

func (e *classError) Error() string { return e.msg }
func (e *classError) Unwrap() error { return e.class }

func errorf(class error, format string, args ...any) error {
	return &classError{class: class, msg: fmt.Sprintf(format, args...)}
}

// classifyDial names why a TCP connect failed.
func classifyDial(addr string, err error) error {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return errorf(ErrDNS, "ssh: %s: host name %q does not resolve (%s)", addr, dnsErr.Name, dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return errorf(ErrUnreachable, "ssh: %s unreachable: connection refused", addr)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return errorf(ErrUnreachable, "ssh: %s unreachable: no route to host", addr)
	case isTimeout(err):
		return errorf(ErrUnreachable, "ssh: %s unreachable: connect timed out", addr)
	}
	return errorf(ErrUnreachable, "ssh: %s unreachable: %v", addr, err)
}

// classifyHandshake names why the SSH handshake failed. hostKeyDone says
// whether the host key was accepted: failures after it are authentication
// failures (x/crypto reports rejected credentials only as text).
func classifyHandshake(addr string, err error, hostKeyDone bool) error {
	var hk *HostKeyError
	switch {
	case errors.As(err, &hk):
		return hk
	case isTimeout(err):
		return errorf(ErrHandshakeTimeout, "ssh: %s: handshake or authentication timed out", addr)
	case hostKeyDone && strings.Contains(err.Error(), "unable to authenticate"):
		return errorf(ErrAuthRejected, "ssh: %s: authentication rejected (%s)", addr, attemptedMethods(err))
	case hostKeyDone && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
		return errorf(errClosedInAuth, "ssh: %s: server closed the connection during authentication", addr)
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		return errorf(ErrUnreachable, "ssh: %s: server closed the connection before the handshake completed", addr)
	}
	return errorf(ErrUnreachable, "ssh: %s: handshake failed: %v", addr, err)
}

// attemptedMethods keeps the "attempted methods [...]" part of x/crypto's
// authentication error, which names methods but no credentials.
func attemptedMethods(err error) string {
	s := err.Error()
	if i := strings.Index(s, "attempted methods"); i >= 0 {
		s = s[i:]
		if j := strings.Index(s, "]"); j >= 0 {
			return s[:j+1]
		}
	}
	return "no method accepted"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// serverDown reports whether err says the server (not our configuration)
// is failing. Only these count against the circuit breaker.
func serverDown(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrHandshakeTimeout) || errors.Is(err, ErrDNS)
}

// worthReconnecting tells whether a resumed run should try its server
// again: when it is down, and when it closed the connection during
// authentication, which the same credentials passed before (a server
// whose connection processes were killed, or one at its MaxStartups).
func worthReconnecting(err error) bool {
	return serverDown(err) || errors.Is(err, errClosedInAuth)
}

// errClass is the Observer's name for a connect failure.
func errClass(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{
		{ErrDNS, "dns"}, {ErrUnreachable, "unreachable"}, {ErrHandshakeTimeout, "handshake_timeout"},
		{ErrAuthRejected, "auth"}, {ErrKeyParse, "key"}, {ErrPassphrase, "key"},
		{ErrHostKeyUnknown, "host_key"}, {ErrHostKeyChanged, "host_key"}, {ErrBreakerOpen, "breaker_open"},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "other"
}
