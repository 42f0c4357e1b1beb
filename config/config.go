// Package config holds the orchestrator's settings and loads them from
// defaults, a YAML file, CRONIUM_* environment variables and flags, in that
// order of increasing precedence. Each level overrides only the keys it
// actually sets.
package config

import (
	"os"
	"path/filepath"
	"time"

	"github.com/cronium/orchestrator/secret"
)

// Config is every setting of the orchestrator. The yaml tag names the key
// (nested sections join with "."), the doc tag documents it; environment
// variable and flag names derive from the key (see Keys).
type Config struct {
	Orchestrator Orchestrator `yaml:"orchestrator"`
	API          API          `yaml:"api"`
	Jobs         Jobs         `yaml:"jobs"`
	Logs         Logs         `yaml:"logs"`
	Supervisor   Supervisor   `yaml:"supervisor"`
	Docker       Docker       `yaml:"docker"`
	SSH          SSH          `yaml:"ssh"`
	HTTP         HTTP         `yaml:"http"`
	Admin        Admin        `yaml:"admin"`
	Log          Log          `yaml:"log"`
}

type Orchestrator struct {
	ID       string `yaml:"id" doc:"Stable orchestrator id sent as X-Orchestrator-ID; generated once and kept in the state directory when empty"`
	StateDir string `yaml:"state_dir" doc:"Directory for state that must survive restarts (the generated orchestrator id, the journal of running jobs)"`
}

type API struct {
	URL             string        `yaml:"url" doc:"Backend origin, e.g. http://localhost:5001 (paths start /api/internal/)"`
	Token           secret.Value  `yaml:"token" env:"INTERNAL_API_KEY" doc:"Bearer token for the internal API (INTERNAL_API_KEY is accepted too)"`
	RequestTimeout  time.Duration `yaml:"request_timeout" doc:"Timeout of one HTTP request to the backend; a poll the backend holds may take its wait (at most 50s) and 5s more"`
	RetryMaxElapsed time.Duration `yaml:"retry_max_elapsed" doc:"How long one call keeps retrying network errors, 5xx and 429 before giving up"`
}

type Jobs struct {
	MaxConcurrent       int           `yaml:"max_concurrent" doc:"Jobs run at once; the poller claims only free slots"`
	PollInterval        time.Duration `yaml:"poll_interval" doc:"Wait between polls when the queue was empty; a backend that holds polls (the embedded one) is asked to hold an idle poll until a job comes instead"`
	PollMaxBackoff      time.Duration `yaml:"poll_max_backoff" doc:"Longest wait between polls while the backend fails"`
	CancelCheckInterval time.Duration `yaml:"cancel_check_interval" doc:"How often a running job asks the backend whether it was cancelled"`
	OrphanCheckInterval time.Duration `yaml:"orphan_check_interval" doc:"How often jobs claimed under this id but unknown to this process are reconciled (0: only at start-up)"`
	DefaultTimeout      time.Duration `yaml:"default_timeout" doc:"Timeout of a job that names none"`
	StopGrace           time.Duration `yaml:"stop_grace" doc:"Time between SIGTERM and SIGKILL when a job times out or is cancelled"`
	ShutdownGrace       time.Duration `yaml:"shutdown_grace" doc:"On SIGTERM, how long running jobs may finish before the rest are detached (or stopped)"`
	OnShutdown          string        `yaml:"on_shutdown" doc:"Jobs still running after shutdown_grace: detach (they keep running; the next start re-attaches) or stop (stopped and reported failed)"`
	OutputMaxBytes      ByteSize      `yaml:"output_max_bytes" doc:"Output kept per stream for the final result (head and tail beyond it)"`
	MaskSecrets         bool          `yaml:"mask_secrets" doc:"Replace secrets in job output with [MASKED] wherever it leaves the orchestrator: the job's SSH credentials, api.token, and values of environment variables whose names contain TOKEN, SECRET, PASSWORD, PASSWD, PASS, API_KEY, PRIVATE, CREDENTIAL or a part in mask_env_names"`
	MaskEnvNames        string        `yaml:"mask_env_names" doc:"More parts of environment variable names whose values are masked, comma-separated, any case (e.g. DSN,AUTH)"`
}

type Logs struct {
	BatchLines    int           `yaml:"batch_lines" doc:"Ship an output snapshot after this many new lines"`
	BatchBytes    ByteSize      `yaml:"batch_bytes" doc:"Ship an output snapshot after this many new bytes"`
	BatchInterval time.Duration `yaml:"batch_interval" doc:"Ship an output snapshot at least this often while output arrives (past 4 MiB, once per interval per 4 MiB it holds)"`
	LiveURL       string        `yaml:"live_url" env:"CRONIUM_LIVE_LOGS_URL" doc:"Origin of Cronium's live-log server (its Socket.IO server, e.g. http://localhost:5002): each line of output is posted to /broadcast/log-line as it is printed, best effort; empty: off (standalone points it at its embedded backend)"`
}

type Supervisor struct {
	MaxRestarts    int           `yaml:"max_restarts" doc:"Restarts an actor may use within restart_window before its job is failed"`
	RestartWindow  time.Duration `yaml:"restart_window" doc:"Window over which max_restarts is counted"`
	BackoffInitial time.Duration `yaml:"backoff_initial" doc:"Wait before a restarted job actor resumes its job (doubles per restart)"`
	BackoffMax     time.Duration `yaml:"backoff_max" doc:"Longest wait before a restarted job actor resumes"`
}

type Docker struct {
	Enabled       bool          `yaml:"enabled" doc:"Run container jobs (target local) in Docker"`
	Host          string        `yaml:"host" doc:"Docker endpoint; empty uses DOCKER_HOST or the default socket"`
	PullPolicy    string        `yaml:"pull_policy" doc:"never, if-not-present or always"`
	ImageBash     string        `yaml:"image_bash" doc:"Image for Bash jobs"`
	ImagePython   string        `yaml:"image_python" doc:"Image for Python jobs"`
	ImageNode     string        `yaml:"image_node" doc:"Image for Node.js jobs"`
	NetworkMode   string        `yaml:"network_mode" doc:"Container network mode: bridge, none, host or a network name"`
	User          string        `yaml:"user" doc:"uid:gid the script runs as (never root by default)"`
	ReadOnlyRoot  bool          `yaml:"read_only_root" doc:"Mount the image read-only; the work dir and /tmp are tmpfs"`
	TmpfsSize     ByteSize      `yaml:"tmpfs_size" doc:"Size of the writable tmpfs work dir (and of /tmp)"`
	DefaultMemory ByteSize      `yaml:"default_memory" doc:"Memory limit of a job that names none"`
	MaxMemory     ByteSize      `yaml:"max_memory" doc:"Largest memory limit a job may ask for"`
	DefaultCPUs   float64       `yaml:"default_cpus" doc:"CPU limit (cores) of a job that names none"`
	MaxCPUs       float64       `yaml:"max_cpus" doc:"Largest CPU limit a job may ask for"`
	DefaultPids   int64         `yaml:"default_pids" doc:"Process limit of a job that names none"`
	MaxPids       int64         `yaml:"max_pids" doc:"Largest process limit a job may ask for"`
	APITimeout    time.Duration `yaml:"api_timeout" doc:"Timeout of one Docker API call (pulls excepted)"`
	PullTimeout   time.Duration `yaml:"pull_timeout" doc:"Timeout of one image pull"`
	// The reconciler sweeps SSH spools on the same schedule, with or
	// without Docker.
	DanglingInterval time.Duration `yaml:"dangling_interval" doc:"How often job containers, and SSH spools of ended jobs, that no job owns are removed (0: never); the first pass waits one interval"`
	DanglingGrace    time.Duration `yaml:"dangling_grace" doc:"A container no job owns is removed only once it is this old: a younger one may belong to a job being set up"`
}

type SSH struct {
	KnownHosts          string        `yaml:"known_hosts" doc:"known_hosts file used to verify server host keys"`
	HostKeyPolicy       string        `yaml:"host_key_policy" doc:"strict (default), accept-new (trust on first use, recorded) or insecure-ignore"`
	UseAgent            bool          `yaml:"use_agent" doc:"Also offer the keys of the ssh-agent at agent_socket"`
	AgentSocket         string        `yaml:"agent_socket" doc:"ssh-agent socket; empty uses SSH_AUTH_SOCK"`
	DialTimeout         time.Duration `yaml:"dial_timeout" doc:"TCP connect timeout"`
	HandshakeTimeout    time.Duration `yaml:"handshake_timeout" doc:"SSH handshake and authentication timeout"`
	KeepaliveInterval   time.Duration `yaml:"keepalive_interval" doc:"Interval of keepalive requests on each connection"`
	KeepaliveMaxMissed  int           `yaml:"keepalive_max_missed" doc:"Unanswered keepalives after which a connection is declared dead"`
	MaxSessionsPerConn  int           `yaml:"max_sessions_per_conn" doc:"Sessions multiplexed over one connection (OpenSSH allows 10 by default)"`
	MaxConnsPerServer   int           `yaml:"max_conns_per_server" doc:"Connections opened to one server at most"`
	IdleTimeout         time.Duration `yaml:"idle_timeout" doc:"Close a connection that had no session for this long"`
	BreakerFailures     int           `yaml:"breaker_failures" doc:"Consecutive connection failures that open a server's circuit breaker"`
	BreakerOpenTimeout  time.Duration `yaml:"breaker_open_timeout" doc:"How long an open breaker fails jobs fast before it tries the server again"`
	ReconnectBackoffMax time.Duration `yaml:"reconnect_backoff_max" doc:"Longest wait between reconnect attempts of a resumed job"`
	RemoteSpoolDir      string        `yaml:"remote_spool_dir" doc:"Directory on servers where a running job's output and exit status are spooled"`
}

type HTTP struct {
	Listen string `yaml:"listen" doc:"Address of /metrics, /healthz and /readyz"`
}

type Admin struct {
	Listen string       `yaml:"listen" doc:"Address of the admin API and status page (loopback by default)"`
	Token  secret.Value `yaml:"token" doc:"Token the admin API requires (Authorization: Bearer); mandatory when listen is not loopback"`
}

type Log struct {
	Format string `yaml:"format" doc:"text or json"`
	Level  string `yaml:"level" doc:"debug, info, warn or error"`
}

// Default returns the settings used where nothing else is configured.
func Default() Config {
	return Config{
		Orchestrator: Orchestrator{StateDir: defaultStateDir()},
		API: API{
			URL:             "http://localhost:5001",
			RequestTimeout:  30 * time.Second,
			RetryMaxElapsed: 2 * time.Minute,
		},
		Jobs: Jobs{
			MaxConcurrent:       10,
			PollInterval:        2 * time.Second,
			PollMaxBackoff:      30 * time.Second,
			CancelCheckInterval: 5 * time.Second,
			OrphanCheckInterval: time.Minute,
			DefaultTimeout:      time.Hour,
			StopGrace:           10 * time.Second,
			ShutdownGrace:       30 * time.Second,
			OnShutdown:          ShutdownDetach,
			OutputMaxBytes:      1 * MiB,
			MaskSecrets:         true,
		},
		Logs: Logs{
			BatchLines:    1000,
			BatchBytes:    64 * KiB,
			BatchInterval: time.Second,
		},
		Supervisor: Supervisor{
			MaxRestarts:    5,
			RestartWindow:  5 * time.Minute,
			BackoffInitial: time.Second,
			BackoffMax:     30 * time.Second,
		},
		Docker: Docker{
			Enabled:       true,
			PullPolicy:    "if-not-present",
			ImageBash:     "cronium/runtime-bash:1",
			ImagePython:   "cronium/runtime-python:1",
			ImageNode:     "cronium/runtime-node:1",
			NetworkMode:   "bridge",
			User:          "65534:65534",
			ReadOnlyRoot:  true,
			TmpfsSize:     256 * MiB,
			DefaultMemory: 512 * MiB,
			MaxMemory:     4 * GiB,
			DefaultCPUs:   1,
			MaxCPUs:       2,
			DefaultPids:   256,
			MaxPids:       4096,
			APITimeout:    30 * time.Second,
			PullTimeout:   10 * time.Minute,
			// Nomad's defaults for its dangling containers.
			DanglingInterval: 5 * time.Minute,
			DanglingGrace:    5 * time.Minute,
		},
		SSH: SSH{
			KnownHosts:          defaultKnownHosts(),
			HostKeyPolicy:       "strict",
			DialTimeout:         10 * time.Second,
			HandshakeTimeout:    15 * time.Second,
			KeepaliveInterval:   10 * time.Second,
			KeepaliveMaxMissed:  3,
			MaxSessionsPerConn:  8,
			MaxConnsPerServer:   4,
			IdleTimeout:         2 * time.Minute,
			BreakerFailures:     3,
			BreakerOpenTimeout:  30 * time.Second,
			ReconnectBackoffMax: 30 * time.Second,
			RemoteSpoolDir:      "/tmp",
		},
		HTTP:  HTTP{Listen: "0.0.0.0:9464"},
		Admin: Admin{Listen: "127.0.0.1:9465"},
		Log:   Log{Format: "text", Level: "info"},
	}
}

// defaultStateDir is /var/lib/cronium-orchestrator for root (the daemon in
// its container) and the XDG state directory for anyone else.
func defaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/cronium-orchestrator"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "cronium-orchestrator")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "cronium-orchestrator")
	}
	return ".cronium-state"
}

func defaultKnownHosts() string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".ssh", "known_hosts")
	}
	return "known_hosts"
}
