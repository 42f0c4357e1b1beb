package executors

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cronium/orchestrator/secret"
)

// Language is the interpreter a script is written for.
type Language string

const (
	Bash   Language = "bash"
	Python Language = "python"
	Node   Language = "node"
)

// ParseLanguage accepts the backend's script types (BASH, PYTHON, NODEJS)
// and the CLI's names (bash, python, node), case-insensitively.
func ParseLanguage(s string) (Language, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "bash", "sh", "shell":
		return Bash, nil
	case "python", "python3", "py":
		return Python, nil
	case "node", "nodejs", "node.js", "javascript", "js":
		return Node, nil
	}
	return "", fmt.Errorf("%w: unknown script language %q (want bash, python or node)", ErrInvalidSpec, s)
}

// FileExt is the file name extension interpreters expect for the language.
func (l Language) FileExt() string {
	switch l {
	case Python:
		return ".py"
	case Node:
		return ".js"
	}
	return ".sh"
}

// Spec is everything an executor needs to run one execution. It holds
// secrets (environment values, SSH credentials): log it only through its
// LogValue, which leaves them out.
type Spec struct {
	JobID       string
	ExecutionID string

	// Exactly one of Script and HTTP is set.
	Script *Script
	HTTP   *HTTPRequest

	// Env is the job's own environment. Environment adds the CRONIUM_*
	// variables every executor must provide.
	Env       map[string]string
	InputData json.RawMessage

	// Timeout bounds the execution from when it started; 0 means none.
	Timeout   time.Duration
	Resources Resources

	// Servers are the SSH targets: one, or several for a multi-server job.
	// Empty for local (container) and HTTP executions.
	Servers []Server

	// Resume is set when an earlier Run of this execution may have started it.
	Resume Resume

	// KeepFinished asks Run to leave an execution that ran to its end in
	// place (an exited container, an SSH spool holding the result), for
	// the caller to Abandon (with the servers, for SSH) once it has
	// kept the result: a process killed between the two then resumes the
	// execution and reads its result again, instead of finding it gone.
	// Executors whose finished executions leave nothing ignore it.
	KeepFinished bool

	// Helpers serves the script's runtime helper calls; nil: the job has
	// none (cronium.* calls fail saying so).
	Helpers Helpers
}

// Script is a script and the interpreter for it.
type Script struct {
	Language Language
	Content  string
	// WorkDir is the directory the script starts in; empty means the
	// executor's default.
	WorkDir string
}

// HTTPRequest is the request an HTTP_REQUEST job sends.
type HTTPRequest struct {
	Method  string
	URL     string
	Headers map[string]string
	Body    string
}

// Resources are the limits a job asks for. Zero means "the executor's
// default"; executors clamp requests to their configured maxima.
type Resources struct {
	CPUs        float64 // cores
	MemoryBytes int64
	DiskBytes   int64
	Pids        int64
}

// Resume tells Run what earlier attempts already did.
type Resume struct {
	// Resuming is true when an earlier Run of this execution may have
	// started it: Run must look for it before starting anything.
	Resuming bool
	// Started is true when an earlier Run reported the execution started
	// (Output.Started): if it no longer exists, it was removed while
	// nobody watched, and Run returns an error wrapping ErrNotResumable
	// rather than run the script a second time.
	Started bool
	// StdoutBytes and StderrBytes were already written to Output by
	// earlier attempts and must not be written again.
	StdoutBytes int64
	StderrBytes int64
}

// Environment variables every executor provides to the script.
const (
	EnvJobID       = "CRONIUM_JOB_ID"
	EnvExecutionID = "CRONIUM_EXECUTION_ID"
	EnvInputData   = "CRONIUM_INPUT_DATA"
)

// Environment returns the script's environment: the job's variables plus
// CRONIUM_JOB_ID, CRONIUM_EXECUTION_ID and CRONIUM_INPUT_DATA (the job's
// inputData as JSON, "{}" when it has none). The CRONIUM_* names win over
// job variables of the same name. Keys are sorted so that what reaches the
// script does not depend on map order.
func (s Spec) Environment() []EnvVar {
	fixed := map[string]string{
		EnvJobID:       s.JobID,
		EnvExecutionID: s.ExecutionID,
		EnvInputData:   string(s.InputJSON()),
	}
	out := make([]EnvVar, 0, len(s.Env)+len(fixed))
	for k, v := range s.Env {
		if _, ok := fixed[k]; !ok {
			out = append(out, EnvVar{Name: k, Value: v})
		}
	}
	for k, v := range fixed {
		out = append(out, EnvVar{Name: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// InputJSON is the job's inputData as the script sees it: "{}" when it has
// none (empty, blank or JSON null), the data as given otherwise.
func (s Spec) InputJSON() []byte {
	if in := strings.TrimSpace(string(s.InputData)); in == "" || in == "null" {
		return []byte("{}")
	}
	return s.InputData
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string
	Value string
}

// LogValue keeps secrets out of logs: environment values, script text and
// credentials are left out, only their sizes and names are shown.
func (s Spec) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("job_id", s.JobID),
		slog.String("execution_id", s.ExecutionID),
		slog.Int("env_vars", len(s.Env)),
		slog.Duration("timeout", s.Timeout),
	}
	if s.Script != nil {
		attrs = append(attrs, slog.String("language", string(s.Script.Language)),
			slog.Int("script_bytes", len(s.Script.Content)))
	}
	if s.HTTP != nil {
		attrs = append(attrs, slog.String("http_method", s.HTTP.Method))
	}
	if len(s.Servers) > 0 {
		names := make([]string, len(s.Servers))
		for i, srv := range s.Servers {
			names[i] = srv.Name
		}
		attrs = append(attrs, slog.Any("servers", names))
	}
	return slog.GroupValue(attrs...)
}

// Server is an SSH target.
type Server struct {
	ID         string
	Name       string
	Host       string
	Port       int
	Username   string
	PrivateKey secret.Value
	Passphrase secret.Value
	Password   secret.Value
	// HostKeyFingerprints pins the server's host key (SHA256:... as
	// printed by ssh-keygen -l); empty means "use known_hosts".
	HostKeyFingerprints []string
}

// Address is host:port, with the SSH default port when none is set.
func (s Server) Address() string {
	port := s.Port
	if port == 0 {
		port = 22
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s.Host, "["), "]") // "[fe80::1]" or "fe80::1"
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Label names the server in output prefixes and messages.
func (s Server) Label() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Host
}

// ServerExecutionID is the execution id of server i (0-based) of a
// multi-server job whose job-level execution id is base: each server gets
// an execution record of its own.
func ServerExecutionID(base string, i int) string {
	return fmt.Sprintf("%s-%d", base, i+1)
}
