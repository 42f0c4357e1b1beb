package helpers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cronium/orchestrator/executors"
)

// Limits on what a script may hand over. A variable value stays under
// the relay's FIFO buffer (64 KiB), encoded.
const (
	maxOutput   = 1 << 20 // cronium.output(), JSON-encoded
	maxKey      = 255
	maxValue    = 32 << 10
	callTimeout = 10 * time.Second // one backend call behind a helper
)

// Backend is what the helpers ask of Cronium's backend, live: another job
// may have changed a variable a second ago.
type Backend interface {
	GetVariable(ctx context.Context, userID, key string) (value string, found bool, err error)
	SetVariable(ctx context.Context, userID, key, value string) error
	ExecutionContext(ctx context.Context, executionID string) (json.RawMessage, error)
}

// Observer counts helper calls by helper and outcome (ok, none, refused,
// failed); never by job.
type Observer interface {
	HelperCall(helper, outcome string)
}

// Config describes one execution's helpers.
type Config struct {
	Backend     Backend
	Observer    Observer // may be nil
	Logger      *slog.Logger
	ExecutionID string
	UserID      string // the job's metadata.userId; variables need it
	// Event answers event() when the backend's context route cannot: the
	// event as the job's metadata describes it.
	Event json.RawMessage
	// Keep makes what the script set durable (the journal), so that a
	// restarted orchestrator still reports it; nil keeps it in memory.
	Keep func(Saved) error
}

// Saved is what survives a restart of the orchestrator: the credential the
// script holds and what it set.
type Saved struct {
	ExecutionID string            `json:"executionId"`
	Token       string            `json:"token"`
	Results     map[string]Result `json:"results,omitempty"`
}

// Result is what one run of the script set ("" for a container job, the
// server's name for an SSH job).
type Result struct {
	Output    json.RawMessage `json:"output,omitempty"`
	Condition *bool           `json:"condition,omitempty"`
}

// Service answers the helper calls of one execution; it implements
// executors.Helpers. Calls from the relays of several servers may come at
// once: mu orders them, and Service is the only writer of what they set.
type Service struct {
	cfg   Config
	mu    sync.Mutex
	saved Saved
}

var _ executors.Helpers = (*Service)(nil)

// New returns the service of an execution: a new one (saved is empty: a
// fresh credential is made) or one restored from the journal.
func New(cfg Config, saved Saved) (*Service, error) {
	if saved.Token == "" || saved.ExecutionID != cfg.ExecutionID {
		saved = Saved{ExecutionID: cfg.ExecutionID}
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("helpers: credential: %w", err)
		}
		saved.Token = hex.EncodeToString(b)
	}
	if saved.Results == nil {
		saved.Results = map[string]Result{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, saved: saved}, nil
}

// Install implements executors.Helpers.
func (s *Service) Install(dir string, env []executors.EnvVar) executors.Installation {
	return install(dir, s.saved.Token, env)
}

// Serve implements executors.Helpers.
func (s *Service) Serve(ctx context.Context, server string, requests io.Reader, answers io.Writer) error {
	return serve(ctx, requests, answers, func(ctx context.Context, line []byte) answer {
		return s.call(ctx, server, line)
	})
}

// Saved is a copy of what the service keeps.
func (s *Service) Saved() Saved {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Saved{ExecutionID: s.saved.ExecutionID, Token: s.saved.Token, Results: make(map[string]Result, len(s.saved.Results))}
	for k, v := range s.saved.Results {
		out.Results[k] = v
	}
	return out
}

// errRefused marks a call refused for what the script asked, not for a
// failure behind it.
var errRefused = errors.New("refused")

func refusal(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errRefused}, args...)...)
}

// call answers one request line.
func (s *Service) call(ctx context.Context, server string, line []byte) answer {
	start := time.Now()
	req, err := parseRequest(line)
	op := req.op
	var a answer
	switch {
	case err != nil:
		op, a = "unknown", refuse(err)
	case subtle.ConstantTimeCompare([]byte(req.token), []byte(s.saved.Token)) != 1:
		a = refuse(errors.New("refused: the call's credential is not this execution's"))
		op = known(op)
	default:
		op = known(op)
		a = s.dispatch(ctx, server, req)
	}
	outcome := a.status
	if a.status == "err" {
		outcome = "failed"
		if bytes.HasPrefix(a.body, []byte("refused")) {
			outcome = "refused"
		}
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.HelperCall(op, outcome)
	}
	// Never the values: they may be secrets.
	s.cfg.Logger.Debug("helper call", "execution_id", s.cfg.ExecutionID, "server", server, "helper", op,
		"outcome", outcome, "duration", time.Since(start))
	return a
}

// known is op if it names a helper, else "unknown": metric labels stay few.
func known(op string) string {
	switch op {
	case "output", "output-text", "setCondition", "getCondition", "getVariable", "setVariable", "event":
		return op
	}
	return "unknown"
}

func (s *Service) dispatch(ctx context.Context, server string, req request) answer {
	switch req.op {
	case "output":
		return s.output(server, req.value, false)
	case "output-text":
		return s.output(server, req.value, true)
	case "setCondition":
		return s.setCondition(server, req.value)
	case "getCondition":
		s.mu.Lock()
		c := s.saved.Results[server].Condition
		s.mu.Unlock()
		return ok([]byte(fmt.Sprint(c != nil && *c)))
	case "getVariable":
		return s.getVariable(ctx, req.key)
	case "setVariable":
		return s.setVariable(ctx, req.key, req.value)
	case "event":
		return s.event(ctx)
	}
	return refuse(refusal("no helper %q", req.op))
}
