package embedded

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/cronium/orchestrator/backend"
)

// completeBody is the body of POST /jobs/{id}/complete. Output may be a
// string or {stdout, stderr}: the real route accepts both.
type completeBody struct {
	Status       string          `json:"status"`
	ExitCode     *int            `json:"exitCode"`
	Output       json.RawMessage `json:"output"`
	Metrics      json.RawMessage `json:"metrics"`
	ScriptOutput json.RawMessage `json:"scriptOutput"`
	Condition    *bool           `json:"condition"`
}

// completeResult replaces the job's result.
type completeResult struct {
	ExitCode     int             `json:"exitCode"`
	Metrics      json.RawMessage `json:"metrics,omitempty"`
	ScriptOutput json.RawMessage `json:"scriptOutput,omitempty"`
	Condition    *bool           `json:"condition,omitempty"`
}

// completion is what /complete writes.
type completion struct {
	status    string
	exitCode  int
	result    string
	stdout    *string // nil: output absent, the stored one stays
	stderr    *string
	lastError *string // nil: unchanged
}

const timedOut = "Job execution timed out"

// complete maps a /complete body as the real route does: timeout is
// stored as failed (here with exit code -1, which the UI shows as
// TIMEOUT); no or an unknown status goes by the exit code; on failure,
// stderr becomes the error text.
func (b completeBody) complete() (completion, error) {
	c := completion{exitCode: deref(b.ExitCode, 0)}
	isTimeout := false
	switch strings.ToLower(b.Status) {
	case backend.StatusCompleted:
		c.status = backend.StatusCompleted
	case backend.StatusFailed:
		c.status = backend.StatusFailed
	case backend.StatusTimeout:
		c.status, isTimeout = backend.StatusFailed, true
	case backend.StatusCancelled:
		c.status = backend.StatusCancelled
	default:
		isTimeout = b.Status == "" && c.exitCode == -1
		c.status = backend.StatusFailed
		if c.exitCode == 0 {
			c.status = backend.StatusCompleted
		}
	}
	if isTimeout {
		c.exitCode = -1
	}
	if err := b.decodeOutput(&c); err != nil {
		return c, err
	}
	if c.status == backend.StatusFailed {
		switch {
		case c.stderr != nil && *c.stderr != "" && isTimeout:
			c.lastError = ptr(timedOut + "\n" + *c.stderr)
		case c.stderr != nil && *c.stderr != "":
			c.lastError = c.stderr
		case isTimeout:
			c.lastError = ptr(timedOut)
		}
	}
	res, err := json.Marshal(completeResult{ExitCode: c.exitCode, Metrics: b.Metrics,
		ScriptOutput: b.ScriptOutput, Condition: b.Condition})
	if err != nil {
		return c, fmt.Errorf("encode result: %w", err)
	}
	c.result = string(res)
	return c, nil
}

func (b completeBody) decodeOutput(c *completion) error {
	if len(b.Output) == 0 || string(b.Output) == "null" {
		return nil
	}
	var text string
	if json.Unmarshal(b.Output, &text) == nil {
		c.stdout, c.stderr = &text, ptr("")
		return nil
	}
	var o struct {
		Stdout string `json:"stdout"`
		Stderr string `json:"stderr"`
	}
	if err := json.Unmarshal(b.Output, &o); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	c.stdout, c.stderr = &o.Stdout, &o.Stderr
	return nil
}

func (s *Server) handleComplete(w http.ResponseWriter, r *http.Request) {
	var body completeBody
	if err := readBody(r, &body); err != nil {
		writeFailure(w, err, "")
		return
	}
	c, err := body.complete()
	if err != nil {
		writeFailure(w, err, "")
		return
	}
	now := s.now()
	ev := jobEvent{kind: EventCompleted, orchID: r.Header.Get("X-Orchestrator-ID"), terminal: true,
		detail: fmt.Sprintf("%s, exit code %d, output %d bytes", c.status, c.exitCode, len(deref(c.stdout, "")))}
	j, err := s.store.updateJob(r.Context(), r.PathValue("id"), now, ev,
		`status = ?, completed_at = ?, result = ?, output_stdout = COALESCE(?, output_stdout),
		output_stderr = COALESCE(?, output_stderr), last_error = COALESCE(?, last_error)`,
		c.status, now.UnixMilli(), c.result, c.stdout, c.stderr, c.lastError)
	if err != nil {
		writeFailure(w, err, msgJobNotFound)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "job": j.raw()})
}

func ptr[T any](v T) *T { return &v }
