package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Host key policies of ssh.host_key_policy.
const (
	HostKeyStrict         = "strict"
	HostKeyAcceptNew      = "accept-new"
	HostKeyInsecureIgnore = "insecure-ignore"
)

// Pull policies of docker.pull_policy.
const (
	PullNever        = "never"
	PullIfNotPresent = "if-not-present"
	PullAlways       = "always"
)

// What jobs.on_shutdown does with jobs still running after the grace.
const (
	ShutdownDetach = "detach"
	ShutdownStop   = "stop"
)

// spoolDirForbidden are characters a remote spool directory must not hold:
// it is used in shell commands on the server.
const spoolDirForbidden = " \t\n'\"\\$`*?[]{}()<>|&;!#~"

// Validate checks every value and returns all problems at once (an Errors),
// or nil.
func (c Config) Validate() error {
	v := validator{}

	if id := c.Orchestrator.ID; id != "" {
		v.check("orchestrator.id", len(id) <= 100 && validID(id),
			"want at most 100 letters, digits, '.', '_', '-' or ':'")
	}
	v.check("orchestrator.state_dir", c.Orchestrator.StateDir != "", "must not be empty")

	v.add("api.url", checkOrigin(c.API.URL))
	v.check("api.token", c.API.Token.IsSet(), "required: set CRONIUM_API_TOKEN (or INTERNAL_API_KEY)")
	v.positive("api.request_timeout", c.API.RequestTimeout)
	v.check("api.retry_max_elapsed", c.API.RetryMaxElapsed >= 0, "must not be negative")

	v.check("jobs.max_concurrent", c.Jobs.MaxConcurrent >= 1 && c.Jobs.MaxConcurrent <= 10000, "want 1 to 10000")
	v.positive("jobs.poll_interval", c.Jobs.PollInterval)
	v.check("jobs.poll_max_backoff", c.Jobs.PollMaxBackoff >= c.Jobs.PollInterval, "must be at least jobs.poll_interval")
	v.positive("jobs.cancel_check_interval", c.Jobs.CancelCheckInterval)
	v.check("jobs.orphan_check_interval", c.Jobs.OrphanCheckInterval >= 0, "must not be negative")
	v.positive("jobs.default_timeout", c.Jobs.DefaultTimeout)
	v.positive("jobs.stop_grace", c.Jobs.StopGrace)
	v.check("jobs.shutdown_grace", c.Jobs.ShutdownGrace >= 0, "must not be negative")
	v.oneOf("jobs.on_shutdown", c.Jobs.OnShutdown, ShutdownDetach, ShutdownStop)
	v.check("jobs.output_max_bytes", c.Jobs.OutputMaxBytes >= 4*KiB, "want at least 4KiB")
	v.check("jobs.mask_env_names", validNameParts(c.Jobs.MaskEnvNames),
		"want parts of variable names (letters, digits and _), comma-separated, e.g. DSN,AUTH")

	v.check("logs.batch_lines", c.Logs.BatchLines >= 1, "want at least 1")
	v.check("logs.batch_bytes", c.Logs.BatchBytes >= 1, "want at least 1 byte")
	v.positive("logs.batch_interval", c.Logs.BatchInterval)
	if u := c.Logs.LiveURL; u != "" && checkOrigin(u) != nil {
		v.add("logs.live_url", fmt.Errorf("want the bare http(s) origin such as http://localhost:5002 "+
			"(lines are posted to /broadcast/log-line), got %q", u))
	}

	v.check("supervisor.max_restarts", c.Supervisor.MaxRestarts >= 0, "must not be negative")
	v.positive("supervisor.restart_window", c.Supervisor.RestartWindow)
	v.positive("supervisor.backoff_initial", c.Supervisor.BackoffInitial)
	v.check("supervisor.backoff_max", c.Supervisor.BackoffMax >= c.Supervisor.BackoffInitial,
		"must be at least supervisor.backoff_initial")

	c.validateDocker(&v)
	c.validateSSH(&v)

	v.add("http.listen", checkListen(c.HTTP.Listen))
	v.add("admin.listen", checkListen(c.Admin.Listen))
	if c.Admin.Listen != "" && !IsLoopback(c.Admin.Listen) {
		v.check("admin.token", c.Admin.Token.IsSet(), "required when admin.listen is not a loopback address")
	}
	v.oneOf("log.format", c.Log.Format, "text", "json")
	v.oneOf("log.level", strings.ToLower(c.Log.Level), "debug", "info", "warn", "error")

	return v.result()
}

func (c Config) validateDocker(v *validator) {
	d := c.Docker
	// Read with Docker disabled too: the reconciler sweeps SSH spools.
	v.check("docker.dangling_interval", d.DanglingInterval >= 0, "must not be negative (0 turns the reconciler off)")
	v.positive("docker.dangling_grace", d.DanglingGrace)
	if !d.Enabled {
		return
	}
	v.oneOf("docker.pull_policy", d.PullPolicy, PullNever, PullIfNotPresent, PullAlways)
	v.check("docker.image_bash", d.ImageBash != "", "must not be empty")
	v.check("docker.image_python", d.ImagePython != "", "must not be empty")
	v.check("docker.image_node", d.ImageNode != "", "must not be empty")
	v.check("docker.network_mode", d.NetworkMode != "", "must not be empty (use none to cut the network)")
	v.add("docker.user", checkUser(d.User))
	v.check("docker.tmpfs_size", d.TmpfsSize >= MiB, "want at least 1MiB")
	v.check("docker.default_memory", d.DefaultMemory >= 6*MiB, "want at least 6MiB (Docker's minimum)")
	v.check("docker.max_memory", d.MaxMemory >= d.DefaultMemory, "must be at least docker.default_memory")
	v.check("docker.default_cpus", d.DefaultCPUs > 0, "must be positive")
	v.check("docker.max_cpus", d.MaxCPUs >= d.DefaultCPUs, "must be at least docker.default_cpus")
	// Docker takes nano-CPUs as an int64: beyond it (inf included) a limit
	// wraps to a negative number and every container job fails to start.
	v.check("docker.max_cpus", d.MaxCPUs <= 9e9, "want at most 9e9")
	v.check("docker.default_pids", d.DefaultPids >= 8, "want at least 8")
	v.check("docker.max_pids", d.MaxPids >= d.DefaultPids, "must be at least docker.default_pids")
	v.positive("docker.api_timeout", d.APITimeout)
	v.positive("docker.pull_timeout", d.PullTimeout)
}

func (c Config) validateSSH(v *validator) {
	s := c.SSH
	v.oneOf("ssh.host_key_policy", s.HostKeyPolicy, HostKeyStrict, HostKeyAcceptNew, HostKeyInsecureIgnore)
	if s.HostKeyPolicy != HostKeyInsecureIgnore {
		v.check("ssh.known_hosts", s.KnownHosts != "", "must not be empty unless ssh.host_key_policy is insecure-ignore")
	}
	v.positive("ssh.dial_timeout", s.DialTimeout)
	v.positive("ssh.handshake_timeout", s.HandshakeTimeout)
	v.positive("ssh.keepalive_interval", s.KeepaliveInterval)
	v.check("ssh.keepalive_max_missed", s.KeepaliveMaxMissed >= 1, "want at least 1")
	v.check("ssh.max_sessions_per_conn", s.MaxSessionsPerConn >= 1 && s.MaxSessionsPerConn <= 9,
		"want 1 to 9: stay below OpenSSH's default MaxSessions of 10")
	v.check("ssh.max_conns_per_server", s.MaxConnsPerServer >= 1, "want at least 1")
	v.positive("ssh.idle_timeout", s.IdleTimeout)
	v.check("ssh.breaker_failures", s.BreakerFailures >= 1, "want at least 1")
	v.positive("ssh.breaker_open_timeout", s.BreakerOpenTimeout)
	v.positive("ssh.reconnect_backoff_max", s.ReconnectBackoffMax)
	v.check("ssh.remote_spool_dir", strings.HasPrefix(s.RemoteSpoolDir, "/") &&
		!strings.ContainsAny(s.RemoteSpoolDir, spoolDirForbidden),
		"want an absolute path without whitespace or shell metacharacters")
}

type validator struct{ errs Errors }

func (v *validator) add(key string, err error) {
	if err != nil {
		v.errs = append(v.errs, &FieldError{Key: key, Err: err})
	}
}

func (v *validator) check(key string, ok bool, problem string) {
	if !ok {
		v.add(key, errors.New(problem))
	}
}

func (v *validator) positive(key string, d time.Duration) {
	v.check(key, d > 0, "must be a positive duration")
}

func (v *validator) oneOf(key, got string, allowed ...string) {
	for _, a := range allowed {
		if got == a {
			return
		}
	}
	v.add(key, fmt.Errorf("want one of %s, got %q", strings.Join(allowed, ", "), got))
}

func (v *validator) result() error {
	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

func validID(id string) bool {
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || r == '_' || r == '-' || r == ':'
		if !ok {
			return false
		}
	}
	return true
}

// validNameParts: comma-separated parts of environment variable names;
// empty parts are ignored.
func validNameParts(list string) bool {
	for part := range strings.SplitSeq(list, ",") {
		for _, r := range strings.TrimSpace(part) {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
				return false
			}
		}
	}
	return true
}

func checkOrigin(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("want an http(s) origin such as http://localhost:5001, got %q", raw)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return fmt.Errorf("want the bare origin without a path (the client adds /api/internal/...), got %q", raw)
	}
	return nil
}

// checkListen accepts host:port; empty disables the listener.
func checkListen(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("want a port from 0 to 65535, got %q", port)
	}
	return nil
}

// IsLoopback reports whether a listen address binds only to loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkUser(user string) error {
	if user == "" {
		return errors.New("must not be empty")
	}
	name, _, _ := strings.Cut(user, ":")
	if name == "0" || name == "root" {
		return fmt.Errorf("scripts must not run as root in their container, got %q", user)
	}
	return nil
}
