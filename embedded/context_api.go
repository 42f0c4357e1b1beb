package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/cronium/orchestrator/backend"
)

// executionContext is GET /api/internal/executions/{id}/context: the
// event and user metadata of a run, what cronium.event() shows a script.
// The real backend reads its events and users tables; the embedded one
// has neither and builds both from the job (its metadata and payload).
type executionContext struct {
	ExecutionID string          `json:"executionId"`
	JobID       string          `json:"jobId"`
	EventID     any             `json:"eventId"` // a number when it reads as one, like the events table's id
	UserID      *string         `json:"userId"`
	Metadata    json.RawMessage `json:"metadata"`
	Event       *contextEvent   `json:"event"`
	User        *contextUser    `json:"user"`
}

type contextEvent struct {
	ID          any     `json:"id"`
	Name        string  `json:"name"`
	Type        string  `json:"type"` // BASH, PYTHON, NODEJS or HTTP_REQUEST: Cronium's event types
	Content     *string `json:"content,omitempty"`
	RunLocation string  `json:"runLocation"` // LOCAL or REMOTE
	ServerID    *string `json:"serverId"`
}

// contextUser: the embedded backend knows users by id only.
type contextUser struct {
	ID    string  `json:"id"`
	Email *string `json:"email"`
	Name  *string `json:"name"`
}

func (s *Server) handleExecutionContext(w http.ResponseWriter, r *http.Request) {
	j, err := s.store.jobOfExecution(r.Context(), r.PathValue("id"))
	if err != nil {
		writeFailure(w, err, "Execution not found")
		return
	}
	c, err := buildContext(r.PathValue("id"), j)
	if err != nil {
		writeFailure(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// jobOfExecution returns the job the execution belongs to; errNotFound
// until the execution record exists.
func (s *Store) jobOfExecution(ctx context.Context, execID string) (jobRecord, error) {
	var jobID string
	err := s.db.QueryRowContext(ctx, `SELECT job_id FROM executions WHERE id = ?`, execID).Scan(&jobID)
	if errors.Is(err, sql.ErrNoRows) {
		return jobRecord{}, errNotFound
	}
	if err != nil {
		return jobRecord{}, fmt.Errorf("get execution: %w", err)
	}
	return getJob(ctx, s.db, jobID)
}

func buildContext(execID string, j jobRecord) (executionContext, error) {
	var meta backend.Metadata
	var exec backend.Execution
	if err := json.Unmarshal([]byte(j.Metadata), &meta); err != nil {
		return executionContext{}, fmt.Errorf("job %s metadata: %w", j.ID, err)
	}
	if err := json.Unmarshal([]byte(j.Payload), &exec); err != nil {
		return executionContext{}, fmt.Errorf("job %s payload: %w", j.ID, err)
	}
	metadata, err := withoutCredentials(j.Metadata)
	if err != nil {
		return executionContext{}, fmt.Errorf("job %s metadata: %w", j.ID, err)
	}
	c := executionContext{ExecutionID: execID, JobID: j.ID, Metadata: metadata}
	if meta.UserID != "" {
		c.UserID = &meta.UserID
		c.User = &contextUser{ID: meta.UserID}
	}
	if meta.EventID != "" {
		c.EventID = eventIDValue(string(meta.EventID))
		c.Event = contextEventOf(c.EventID, meta, exec)
	}
	return c, nil
}

func contextEventOf(id any, meta backend.Metadata, exec backend.Execution) *contextEvent {
	ev := &contextEvent{ID: id, Name: meta.EventName, Type: meta.OriginalType, RunLocation: "LOCAL"}
	switch {
	case exec.Script != nil:
		ev.Type, ev.Content = exec.Script.Type, &exec.Script.Content
	case exec.HTTP != nil:
		ev.Type = backend.ScriptHTTP
	}
	if exec.Target.Type == backend.TargetServer {
		ev.RunLocation = "REMOTE"
		if exec.Target.ServerID != "" {
			id := string(exec.Target.ServerID)
			ev.ServerID = &id
		}
	}
	return ev
}

// eventIDValue: SSH jobs carry the event id as a string, container jobs
// as a number; the real context route reads it from the events table,
// where it is always a number.
func eventIDValue(s string) any {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	return s
}

// withoutCredentials drops the SSH credentials of metadata.servers: the
// context reaches the user's script, which has no business with them.
func withoutCredentials(metadata string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(metadata), &m); err != nil {
		return nil, err
	}
	raw, ok := m["servers"]
	if !ok {
		return json.RawMessage(metadata), nil
	}
	var servers []map[string]any
	if err := json.Unmarshal(raw, &servers); err != nil {
		return nil, fmt.Errorf("servers: %w", err)
	}
	for _, sv := range servers {
		delete(sv, "privateKey")
		delete(sv, "password")
		delete(sv, "passphrase")
	}
	b, err := json.Marshal(servers)
	if err != nil {
		return nil, err
	}
	m["servers"] = b
	return json.Marshal(m)
}
