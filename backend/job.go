// Package backend speaks the Cronium backend's internal job API
// (../shared/cronium-internal-api.md), quirks included. The same client
// talks to the real backend and to the embedded one.
package backend

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Job is one element of GET /api/internal/jobs/queue's "jobs". Decoding is
// lenient: unknown fields are ignored, ids may come as numbers or strings.
type Job struct {
	ID           string    `json:"id"`
	Type         string    `json:"type"`
	Status       string    `json:"status,omitempty"`
	Priority     int       `json:"priority"`
	CreatedAt    time.Time `json:"createdAt"`
	ScheduledFor time.Time `json:"scheduledFor"`
	Attempts     int       `json:"attempts"`
	Execution    Execution `json:"execution"`
	Metadata     Metadata  `json:"metadata"`
}

// Execution is what to run and where.
type Execution struct {
	Target      Target          `json:"target"`
	Script      *Script         `json:"script,omitempty"`
	HTTP        *HTTPRequest    `json:"http,omitempty"`
	Environment FlexStringMap   `json:"environment,omitempty"`
	Timeout     Nanoseconds     `json:"timeout,omitempty"`
	InputData   json.RawMessage `json:"inputData,omitempty"`
	Variables   json.RawMessage `json:"variables,omitempty"`
	Resources   *Resources      `json:"resources,omitempty"`
	RetryPolicy *RetryPolicy    `json:"retryPolicy,omitempty"`
}

// Target is "local" (a container here) or "server" (SSH).
type Target struct {
	Type          string         `json:"type"`
	ServerID      FlexString     `json:"serverId,omitempty"`
	ServerDetails *ServerDetails `json:"serverDetails,omitempty"`
}

// Target types.
const (
	TargetLocal  = "local"
	TargetServer = "server"
)

// Script types as the backend names them.
const (
	ScriptBash   = "BASH"
	ScriptPython = "PYTHON"
	ScriptNode   = "NODEJS"
	ScriptHTTP   = "HTTP_REQUEST"
)

// Script is the script of a script job.
type Script struct {
	Type             string `json:"type"`
	Content          string `json:"content"`
	WorkingDirectory string `json:"workingDirectory,omitempty"`
}

// HTTPRequest is the request of an HTTP_REQUEST job.
type HTTPRequest struct {
	Method  string        `json:"method"`
	URL     string        `json:"url"`
	Headers FlexStringMap `json:"headers,omitempty"`
	Body    string        `json:"body,omitempty"`
}

// ServerDetails is an SSH server as the backend sends it: credentials are
// plain text here (privateKey is PEM/OpenSSH text with real newlines).
type ServerDetails struct {
	ID         FlexString `json:"id"`
	Name       string     `json:"name"`
	Host       string     `json:"host"`
	Port       int        `json:"port,omitempty"`
	Username   string     `json:"username"`
	PrivateKey string     `json:"privateKey,omitempty"`
	Password   string     `json:"password,omitempty"`
	Passphrase string     `json:"passphrase,omitempty"`
}

// Resources are the limits a job asks for.
type Resources struct {
	CPULimit    float64 `json:"cpuLimit,omitempty"`    // cores
	MemoryLimit int64   `json:"memoryLimit,omitempty"` // bytes
	DiskLimit   int64   `json:"diskLimit,omitempty"`   // bytes
	PidsLimit   int64   `json:"pidsLimit,omitempty"`
}

// RetryPolicy is the backend's retry policy; BackoffDelay is in seconds.
type RetryPolicy struct {
	MaxAttempts  int     `json:"maxAttempts,omitempty"`
	BackoffType  string  `json:"backoffType,omitempty"`
	BackoffDelay float64 `json:"backoffDelay,omitempty"`
}

// Metadata describes where the job came from. EventID is a number for
// container jobs and a string for SSH jobs: FlexString takes both.
type Metadata struct {
	EventName    string          `json:"eventName,omitempty"`
	TriggeredBy  string          `json:"triggeredBy,omitempty"`
	LogID        FlexString      `json:"logId,omitempty"`
	OriginalType string          `json:"originalType,omitempty"`
	EventID      FlexString      `json:"eventId,omitempty"`
	UserID       string          `json:"userId,omitempty"`
	MultiServer  bool            `json:"multiServer,omitempty"`
	Servers      []ServerDetails `json:"servers,omitempty"`
}

// Nanoseconds is a duration sent as integer nanoseconds (a Go
// time.Duration as-is). Floats and numeric strings are accepted too.
type Nanoseconds time.Duration

func (n Nanoseconds) Duration() time.Duration { return time.Duration(n) }

func (n *Nanoseconds) UnmarshalJSON(b []byte) error {
	var f FlexString
	if err := f.UnmarshalJSON(b); err != nil {
		return fmt.Errorf("timeout: %w", err)
	}
	if f == "" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseFloat(string(f), 64)
	if err != nil || math.IsNaN(v) {
		return fmt.Errorf("timeout: want nanoseconds, got %q", string(f))
	}
	// Converting a float beyond int64 is implementation-defined in Go (on
	// amd64 1e30 becomes a negative number): saturate instead, so that an
	// absurd timeout stays absurdly long, not negative.
	switch {
	case v >= math.MaxInt64:
		*n = math.MaxInt64
	case v <= math.MinInt64:
		*n = math.MinInt64
	default:
		*n = Nanoseconds(v)
	}
	return nil
}

func (n Nanoseconds) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatInt(int64(n), 10)), nil
}

// FlexString accepts a JSON string, number or boolean and keeps its text.
type FlexString string

func (f FlexString) String() string { return string(f) }

func (f *FlexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		*f = ""
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = FlexString(s)
		return nil
	}
	if b[0] == '{' || b[0] == '[' {
		return fmt.Errorf("want a string or number, got %s", b)
	}
	*f = FlexString(b)
	return nil
}

// FlexStringMap is an object whose values may be strings, numbers or
// booleans (environment variables set from a UI often are); every value is
// kept as text.
type FlexStringMap map[string]string

func (m *FlexStringMap) UnmarshalJSON(b []byte) error {
	var raw map[string]FlexString
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(FlexStringMap, len(raw))
	for k, v := range raw {
		out[k] = string(v)
	}
	*m = out
	return nil
}
