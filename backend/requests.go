package backend

import (
	"encoding/json"
	"time"
)

// Job statuses the backend knows.
const (
	StatusQueued    = "queued"
	StatusClaimed   = "claimed"
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusTimeout   = "timeout" // only in /complete; stored as failed
	StatusCancelled = "cancelled"
)

// JobRow is a raw job row, as /acknowledge (its "job") and /orphaned return
// it. Only the fields the orchestrator decides on are decoded; Payload keeps
// the execution as the backend stored it, when it did.
type JobRow struct {
	ID             string          `json:"id"`
	Type           string          `json:"type,omitempty"`
	Status         string          `json:"status"`
	OrchestratorID string          `json:"orchestratorId,omitempty"`
	StartedAt      *time.Time      `json:"startedAt,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
}

// UnmarshalJSON takes an id that is a number as its text, as the queue's
// decoding does (decodeJobs): one such row must not make the whole list
// of orphans unreadable.
func (r *JobRow) UnmarshalJSON(b []byte) error {
	type plain JobRow // without this method
	var row struct {
		plain
		ID FlexString `json:"id"`
	}
	if err := json.Unmarshal(b, &row); err != nil {
		return err
	}
	*r = JobRow(row.plain)
	r.ID = string(row.ID)
	return nil
}

// StatusDetails is "details" of PUT /jobs/{id}/status. Error must be a
// string: the backend stores it as text.
type StatusDetails struct {
	Message  string `json:"message,omitempty"`
	ExitCode *int   `json:"exitCode,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Completion is the body of POST /jobs/{id}/complete: the job's final
// result. Status is completed, failed, timeout or cancelled.
type Completion struct {
	Status       string           `json:"status"`
	ExitCode     int              `json:"exitCode"`
	Output       CompletionOutput `json:"output"`
	Metrics      json.RawMessage  `json:"metrics,omitempty"`
	ScriptOutput json.RawMessage  `json:"scriptOutput,omitempty"`
	Condition    *bool            `json:"condition,omitempty"`
	Timestamp    time.Time        `json:"timestamp"`
}

// CompletionOutput is the output kept for /complete.
type CompletionOutput struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
}

// ExecutionCreate is the body of POST /executions/{execId}/create.
type ExecutionCreate struct {
	JobID      string `json:"jobId"`
	ServerID   string `json:"serverId,omitempty"`
	ServerName string `json:"serverName,omitempty"`
}

// ExecutionUpdate is the body of PUT /executions/{execId}/update. Every
// field is optional and omitted when unset. The backend treats an update
// with CompletedAt set, or Status completed/failed, as terminal (it runs the
// job's actions); the orchestrator therefore never sets those fields and
// ends every job through /complete instead (see IsTerminal).
type ExecutionUpdate struct {
	Status               string     `json:"status,omitempty"`
	StartedAt            *time.Time `json:"startedAt,omitempty"`
	CompletedAt          *time.Time `json:"completedAt,omitempty"`
	ExitCode             *int       `json:"exitCode,omitempty"`
	Output               *string    `json:"output,omitempty"`
	Error                *string    `json:"error,omitempty"`
	Metadata             any        `json:"metadata,omitempty"`
	SetupStartedAt       *time.Time `json:"setupStartedAt,omitempty"`
	SetupCompletedAt     *time.Time `json:"setupCompletedAt,omitempty"`
	ExecutionStartedAt   *time.Time `json:"executionStartedAt,omitempty"`
	ExecutionCompletedAt *time.Time `json:"executionCompletedAt,omitempty"`
	CleanupStartedAt     *time.Time `json:"cleanupStartedAt,omitempty"`
	CleanupCompletedAt   *time.Time `json:"cleanupCompletedAt,omitempty"`
	SetupDuration        *int64     `json:"setupDuration,omitempty"` // milliseconds
	ExecutionDuration    *int64     `json:"executionDuration,omitempty"`
	CleanupDuration      *int64     `json:"cleanupDuration,omitempty"`
	TotalDuration        *int64     `json:"totalDuration,omitempty"`
}

// IsTerminal reports whether the backend would treat u as a terminal
// update (and re-run the job's actions).
func (u ExecutionUpdate) IsTerminal() bool {
	return u.CompletedAt != nil || u.Status == StatusCompleted || u.Status == StatusFailed
}

// Heartbeat is the body of POST /orchestrator/heartbeat and /health.
type Heartbeat struct {
	OrchestratorID string    `json:"orchestratorId"`
	Timestamp      time.Time `json:"timestamp"`
	ActiveJobs     int       `json:"activeJobs"`
	Capacity       int       `json:"capacity"`
	Version        string    `json:"version,omitempty"`
}
