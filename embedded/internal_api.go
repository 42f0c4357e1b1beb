package embedded

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cronium/orchestrator/backend"
)

func (s *Server) routeInternal() {
	for pattern, h := range map[string]http.HandlerFunc{
		"GET /api/internal/jobs/queue":               s.handleQueue,
		"POST /api/internal/jobs/{id}/acknowledge":   s.handleAcknowledge,
		"PUT /api/internal/jobs/{id}/status":         s.handleStatus,
		"POST /api/internal/jobs/{id}/complete":      s.handleComplete,
		"POST /api/internal/jobs/{id}/fail":          s.handleFail,
		"POST /api/internal/jobs/{id}/release":       s.handleRelease,
		"GET /api/internal/jobs/orphaned":            s.handleOrphaned,
		"POST /api/internal/executions/{id}/create":  s.handleExecutionCreate,
		"PUT /api/internal/executions/{id}/update":   s.handleExecutionUpdate,
		"GET /api/internal/orchestrator/health":      s.handleHealth,
		"POST /api/internal/orchestrator/health":     s.handleAccept,
		"POST /api/internal/orchestrator/heartbeat":  s.handleAccept,
		"GET /api/internal/servers/{id}/credentials": s.handleCredentials,
		"GET /api/internal/executions/{id}/context":  s.handleExecutionContext,
		"GET /api/internal/variables/{userId}/{key}": s.handleGetVariable,
		"PUT /api/internal/variables/{userId}/{key}": s.handleSetVariable,
	} {
		s.mux.HandleFunc(pattern, s.internal(h))
	}
}

const (
	msgJobNotFound  = "Job not found"
	msgOrchRequired = "Orchestrator ID required"
)

// handleQueue claims like the real route; the wait parameter (seconds)
// holds the request until a job is claimable (see claimWaiting), and every
// answer announces that in backend.HeaderLongPoll.
func (s *Server) handleQueue(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(backend.HeaderLongPoll, backend.FormatWait(MaxWait))
	orch := r.Header.Get("X-Orchestrator-ID")
	if orch == "" {
		writeError(w, http.StatusBadRequest, msgOrchRequired)
		return
	}
	limit := 10 // the real default
	if v := r.URL.Query().Get("batchSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 { // PostgreSQL refuses LIMIT NaN or < 0
			writeFailure(w, errors.New("invalid batchSize"), "")
			return
		}
		limit = n
	}
	wait, err := parseWait(r.URL.Query().Get(backend.QueryWait))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	jobs, err := s.claimWaiting(r.Context(), orch, limit, wait)
	if err != nil {
		writeFailure(w, err, "")
		return
	}
	out := make([]wireJob, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, j.wire())
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out, "count": len(out)})
}

func (s *Server) handleAcknowledge(w http.ResponseWriter, r *http.Request) {
	var body struct {
		OrchestratorID string `json:"orchestratorId"`
	}
	if err := readBody(r, &body); err != nil {
		writeFailure(w, err, "")
		return
	}
	if body.OrchestratorID == "" {
		writeError(w, http.StatusBadRequest, msgOrchRequired)
		return
	}
	j, err := s.store.acknowledge(r.Context(), r.PathValue("id"), body.OrchestratorID, s.now())
	if errors.Is(err, errNotOwner) {
		writeError(w, http.StatusForbidden, "Job not claimed by this orchestrator")
		return
	}
	if err != nil {
		writeFailure(w, err, msgJobNotFound)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "job": j.raw()})
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Status  string `json:"status"`
		Details struct {
			Message  *string `json:"message"`
			ExitCode *int    `json:"exitCode"`
			Error    *string `json:"error"`
		} `json:"details"`
	}
	if err := readBody(r, &body); err != nil {
		writeFailure(w, err, "")
		return
	}
	now := s.now()
	ev := jobEvent{kind: EventStatus, orchID: r.Header.Get("X-Orchestrator-ID"), detail: body.Status}
	d := body.Details
	var (
		j   jobRecord
		err error
	)
	switch body.Status {
	case "":
		writeError(w, http.StatusBadRequest, "Status required")
		return
	case backend.StatusRunning: // (re)sets startedAt on every call
		j, err = s.store.updateJob(r.Context(), r.PathValue("id"), now, ev,
			`status = 'running', started_at = ?`, now.UnixMilli())
	case backend.StatusCompleted:
		ev.terminal = true
		j, err = s.store.updateJob(r.Context(), r.PathValue("id"), now, ev,
			`status = 'completed', completed_at = ?, result = json_object('exitCode', ?)`,
			now.UnixMilli(), deref(d.ExitCode, 0))
	case backend.StatusFailed:
		ev.terminal = true
		errText := "Unknown error"
		if d.Error != nil {
			errText = *d.Error
		} else if d.Message != nil {
			errText = *d.Message
		}
		j, err = s.store.updateJob(r.Context(), r.PathValue("id"), now, ev,
			`status = 'failed', completed_at = ?, last_error = ?,
			result = CASE WHEN ? IS NULL THEN result ELSE json_object('exitCode', ?) END`,
			now.UnixMilli(), errText, d.ExitCode, d.ExitCode)
	default:
		writeError(w, http.StatusBadRequest, "Invalid status transition")
		return
	}
	if err != nil {
		writeFailure(w, err, msgJobNotFound)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "job": j.raw()})
}

func (s *Server) handleFail(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Error    string `json:"error"`
		ExitCode *int   `json:"exitCode"`
	}
	if err := readBody(r, &body); err != nil {
		writeFailure(w, err, "")
		return
	}
	if body.Error == "" {
		writeError(w, http.StatusBadRequest, "Error message required")
		return
	}
	now := s.now()
	ev := jobEvent{kind: EventFailed, orchID: r.Header.Get("X-Orchestrator-ID"), terminal: true, detail: body.Error}
	j, err := s.store.updateJob(r.Context(), r.PathValue("id"), now, ev,
		`status = 'failed', completed_at = ?, last_error = ?,
		result = CASE WHEN ? IS NULL THEN result ELSE json_object('exitCode', ?) END`,
		now.UnixMilli(), body.Error, body.ExitCode, body.ExitCode)
	if err != nil {
		writeFailure(w, err, msgJobNotFound)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "job": j.raw()})
}

func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Message *string `json:"message"`
	}
	if err := readBody(r, &body); err != nil {
		writeFailure(w, err, "")
		return
	}
	msg := deref(body.Message, "Released back to queue after orchestrator restart")
	now := s.now()
	ev := jobEvent{kind: EventReleased, orchID: r.Header.Get("X-Orchestrator-ID"), detail: msg}
	j, err := s.store.updateJob(r.Context(), r.PathValue("id"), now, ev,
		`status = 'queued', orchestrator_id = NULL, started_at = NULL, last_error = ?`, msg)
	if err != nil {
		writeFailure(w, err, msgJobNotFound)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "job": j.raw()})
}

func (s *Server) handleOrphaned(w http.ResponseWriter, r *http.Request) {
	orch := r.URL.Query().Get("orchestratorId") // the real route reads no header here
	if orch == "" {
		writeError(w, http.StatusBadRequest, msgOrchRequired)
		return
	}
	jobs, err := s.store.orphaned(r.Context(), orch)
	if err != nil {
		writeFailure(w, err, "")
		return
	}
	rows := make([]rawRow, 0, len(jobs))
	for _, j := range jobs {
		rows = append(rows, j.raw())
	}
	writeJSON(w, http.StatusOK, rows)
}

func (s *Server) handleExecutionCreate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		JobID      string             `json:"jobId"`
		ServerID   backend.FlexString `json:"serverId"`
		ServerName string             `json:"serverName"`
	}
	if err := readBody(r, &body); err != nil {
		writeFailure(w, err, "")
		return
	}
	if body.JobID == "" {
		writeError(w, http.StatusBadRequest, "Job ID required")
		return
	}
	id := r.PathValue("id")
	s.live.restart(body.JobID) // a new execution's output starts afresh
	err := s.store.createExecution(r.Context(), id, body.JobID, string(body.ServerID), body.ServerName,
		r.Header.Get("X-Orchestrator-ID"), s.now())
	if err != nil {
		writeFailure(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "execution": map[string]string{"id": id, "jobId": body.JobID}})
}

// timingKeys are the execution update's phase fields, kept as sent.
var timingKeys = []string{"setupStartedAt", "setupCompletedAt", "executionStartedAt", "executionCompletedAt",
	"cleanupStartedAt", "cleanupCompletedAt", "setupDuration", "executionDuration", "cleanupDuration", "totalDuration"}

func (s *Server) handleExecutionUpdate(w http.ResponseWriter, r *http.Request) {
	// Fields are told present from absent, as the real route does.
	var raw map[string]json.RawMessage
	if err := readBody(r, &raw); err != nil {
		writeFailure(w, err, "")
		return
	}
	u, err := decodeExecUpdate(raw)
	if err != nil {
		writeFailure(w, err, "")
		return
	}
	e, err := s.store.updateExecution(r.Context(), r.PathValue("id"), u, r.Header.Get("X-Orchestrator-ID"), s.now())
	if err != nil {
		writeFailure(w, err, "Execution not found")
		return
	}
	// Not the whole row: the output it holds can be tens of MB, which
	// every snapshot would then carry back to a caller that ignores it.
	writeJSON(w, http.StatusOK, map[string]any{"success": true,
		"execution": map[string]any{"id": e.ID, "jobId": e.JobID, "status": e.Status}})
}

// decodeExecUpdate reads an execution update's fields; null counts as
// absent.
func decodeExecUpdate(raw map[string]json.RawMessage) (execUpdate, error) {
	u := execUpdate{Timings: map[string]json.RawMessage{}}
	for k, into := range map[string]any{"status": &u.Status, "startedAt": &u.StartedAt,
		"completedAt": &u.CompletedAt, "exitCode": &u.ExitCode, "output": &u.Output, "error": &u.Error} {
		if v, ok := raw[k]; ok {
			if err := json.Unmarshal(v, into); err != nil {
				return u, fmt.Errorf("decode %s: %w", k, err)
			}
		}
	}
	if v, ok := raw["metadata"]; ok && string(v) != "null" {
		u.Metadata = v
	}
	for _, k := range timingKeys {
		if v, ok := raw[k]; ok && string(v) != "null" {
			u.Timings[k] = v
		}
	}
	return u, nil
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if err := s.store.db.PingContext(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "healthy", "timestamp": s.now().UTC().Format(time.RFC3339Nano)})
}

// handleAccept takes a heartbeat or health report and ignores it, as the
// real backend does today; only the body must parse.
func (s *Server) handleAccept(w http.ResponseWriter, r *http.Request) {
	if err := readBody(r, nil); err != nil {
		writeFailure(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

func (s *Server) handleCredentials(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Orchestrator-ID") == "" {
		writeError(w, http.StatusBadRequest, msgOrchRequired)
		return
	}
	sv, err := s.store.server(r.Context(), r.PathValue("id"))
	if err != nil {
		writeFailure(w, err, "Server not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"server": sv.details()})
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
