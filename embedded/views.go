package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cronium/orchestrator/backend"
)

// JobView is a job as the public API shows it.
type JobView struct {
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Status          string          `json:"status"` // raw: queued, claimed, running, completed, failed, cancelled
	Priority        int             `json:"priority"`
	CreatedAt       time.Time       `json:"createdAt"`
	ScheduledFor    time.Time       `json:"scheduledFor"`
	StartedAt       *time.Time      `json:"startedAt,omitempty"`
	CompletedAt     *time.Time      `json:"completedAt,omitempty"`
	UpdatedAt       time.Time       `json:"updatedAt"`
	OrchestratorID  string          `json:"orchestratorId,omitempty"`
	UserID          string          `json:"userId,omitempty"` // metadata.userId: whose variables the job uses
	Result          ResultView      `json:"result"`
	Output          OutputView      `json:"output"`
	Executions      []ExecutionView `json:"executions"`
	TerminalUpdates int             `json:"terminalUpdates"` // how many times the job's actions would have run
}

// ResultView is the outcome as the UI would show it.
type ResultView struct {
	Status       string          `json:"status"` // UI status, see the Status* constants
	ExitCode     *int            `json:"exitCode,omitempty"`
	Error        string          `json:"error,omitempty"`
	ScriptOutput json.RawMessage `json:"scriptOutput,omitempty"`
	Condition    *bool           `json:"condition,omitempty"`
	Metrics      json.RawMessage `json:"metrics,omitempty"` // as the orchestrator reported them
	Cost         *CostView       `json:"cost,omitempty"`    // read from Metrics; nil when none was measured
}

// UI statuses.
const (
	StatusQueued    = "QUEUED"
	StatusRunning   = "RUNNING"
	StatusSuccess   = "SUCCESS"
	StatusFailure   = "FAILURE"
	StatusTimeout   = "TIMEOUT"
	StatusPartial   = "PARTIAL"
	StatusCancelled = "CANCELLED"
)

// OutputView is a job's output: the final one once /complete delivered
// it, else the latest execution's snapshot (its output as stdout, its
// error as stderr). Final reports that the job is terminal. Version
// changes whenever the job or its executions change (it is the job's
// latest event): GET /api/jobs/{id}/output?after=<version>&wait=<seconds>
// answers once it differs from after.
type OutputView struct {
	Stdout  string `json:"stdout"`
	Stderr  string `json:"stderr"`
	Final   bool   `json:"final"`
	Status  string `json:"status"` // raw job status
	Version int64  `json:"version"`
}

// ExecutionView is one execution of the job.
type ExecutionView struct {
	ID          string          `json:"id"`
	ServerID    string          `json:"serverId,omitempty"`
	ServerName  string          `json:"serverName,omitempty"`
	Status      string          `json:"status"`
	ExitCode    *int            `json:"exitCode,omitempty"`
	Output      string          `json:"output"`
	Error       string          `json:"error"`
	StartedAt   *time.Time      `json:"startedAt,omitempty"`
	CompletedAt *time.Time      `json:"completedAt,omitempty"`
	Timings     json.RawMessage `json:"timings"` // phase timestamps and durations (ms) as reported
}

// ExitCodeFor is the exit code the submit CLI ends with: the job's own;
// 124 on timeout; 125 when it could not run (failed without an exit code,
// or the orchestrator reported 125) or is not finished; 130 when
// cancelled. A failure reported with exit code 0 gives 1.
func ExitCodeFor(v JobView) int {
	code := -1
	if v.Result.ExitCode != nil {
		code = *v.Result.ExitCode
	}
	switch v.Result.Status {
	case StatusSuccess, StatusPartial:
		return clampExit(max(code, 0))
	case StatusTimeout:
		return 124
	case StatusCancelled:
		return 130
	case StatusFailure:
		switch {
		case v.Result.ExitCode == nil || code < 0:
			return 125
		case code == 0:
			return 1
		}
		return clampExit(code)
	}
	return 125
}

func clampExit(code int) int { return min(code, 255) }

// terminal reports the raw statuses after which nothing more is expected.
func terminal(status string) bool {
	return status == backend.StatusCompleted || status == backend.StatusFailed || status == backend.StatusCancelled
}

// uiStatus follows the page's conventions: exit code -1 → TIMEOUT,
// completed with exit code ≥ 100 → PARTIAL. CANCELLED is our extension:
// the page and the README map cancelled to FAILURE, but ExitCodeFor must
// tell a cancel apart to end the submit CLI with 130.
func uiStatus(status string, exitCode *int) string {
	switch status {
	case backend.StatusRunning:
		return StatusRunning
	case backend.StatusCancelled:
		return StatusCancelled
	case backend.StatusCompleted:
		if exitCode != nil && *exitCode >= 100 {
			return StatusPartial
		}
		return StatusSuccess
	case backend.StatusFailed:
		if exitCode != nil && *exitCode == -1 {
			return StatusTimeout
		}
		return StatusFailure
	}
	return StatusQueued
}

// storedResult is the job's result column.
type storedResult struct {
	ExitCode     *int            `json:"exitCode"`
	Metrics      json.RawMessage `json:"metrics"`
	ScriptOutput json.RawMessage `json:"scriptOutput"`
	Condition    *bool           `json:"condition"`
}

func (j jobRecord) view() JobView {
	var res storedResult
	if j.Result.Valid {
		_ = json.Unmarshal([]byte(j.Result.String), &res) // written by us
	}
	var meta struct {
		UserID string `json:"userId"`
	}
	_ = json.Unmarshal([]byte(j.Metadata), &meta) // written by us
	return JobView{
		ID: j.ID, Type: j.Type, Status: j.Status, Priority: j.Priority,
		CreatedAt: fromMillis(j.CreatedAt), ScheduledFor: fromMillis(j.ScheduledFor),
		StartedAt: timeNull(j.StartedAt), CompletedAt: timeNull(j.CompletedAt), UpdatedAt: fromMillis(j.UpdatedAt),
		OrchestratorID: j.OrchestratorID.String, UserID: meta.UserID,
		Result: ResultView{Status: uiStatus(j.Status, res.ExitCode), ExitCode: res.ExitCode,
			Error: j.LastError.String, ScriptOutput: res.ScriptOutput, Condition: res.Condition, Metrics: res.Metrics,
			Cost: costOf(res.Metrics)},
		Executions:      []ExecutionView{},
		TerminalUpdates: j.TerminalUpdates,
	}
}

func (e execRecord) view() ExecutionView {
	v := ExecutionView{ID: e.ID, ServerID: e.ServerID.String, ServerName: e.ServerName.String, Status: e.Status,
		Output: e.Output.String, Error: e.Error.String, StartedAt: timeNull(e.StartedAt),
		CompletedAt: timeNull(e.CompletedAt), Timings: json.RawMessage(e.Timings)}
	if e.ExitCode.Valid {
		code := int(e.ExitCode.Int64)
		v.ExitCode = &code
	}
	return v
}

// hasFinalOutput reports whether /complete (or a terminal execution
// update) stored the job's output.
func (j jobRecord) hasFinalOutput() bool { return j.OutStdout.Valid || j.OutStderr.Valid }

// output picks the final output, else the latest execution's snapshot
// (latest may be nil: no execution yet).
func output(j jobRecord, latest *execRecord) OutputView {
	o := OutputView{Final: terminal(j.Status), Status: j.Status}
	switch {
	case j.hasFinalOutput():
		o.Stdout, o.Stderr = j.OutStdout.String, j.OutStderr.String
	case latest != nil:
		o.Stdout, o.Stderr = latest.Output.String, latest.Error.String
	}
	return o
}

// Job returns the job with its executions and output.
func (s *Store) Job(ctx context.Context, id string) (JobView, error) {
	// The version first: what is read after it is at least as new.
	version, err := s.version(ctx, id)
	if err != nil {
		return JobView{}, err
	}
	j, err := getJob(ctx, s.db, id)
	if err != nil {
		return JobView{}, err
	}
	execs, err := s.executions(ctx, id)
	if err != nil {
		return JobView{}, err
	}
	v := j.view()
	for _, e := range execs {
		v.Executions = append(v.Executions, e.view())
	}
	var latest *execRecord
	if len(execs) > 0 {
		latest = &execs[len(execs)-1]
	}
	v.Output = output(j, latest)
	v.Output.Version = version
	return v, nil
}

// Output returns the job's output alone (what a follower polls): it reads
// the latest execution only, and none once the final output is stored.
func (s *Store) Output(ctx context.Context, id string) (OutputView, error) {
	// The version first: what is read after it is at least as new, so a
	// follower waiting for the next version misses no change.
	version, err := s.version(ctx, id)
	if err != nil {
		return OutputView{}, err
	}
	j, err := getJob(ctx, s.db, id)
	if err != nil {
		return OutputView{}, err
	}
	var latest *execRecord
	if !j.hasFinalOutput() {
		if latest, err = s.latestExecution(ctx, id); err != nil {
			return OutputView{}, err
		}
	}
	o := output(j, latest)
	o.Version = version
	return o, nil
}

// List returns up to limit jobs, newest first, optionally with one raw
// status; without output or executions.
func (s *Store) List(ctx context.Context, status string, limit int) ([]JobView, error) {
	jobs, err := queryJobs(ctx, s.db, `SELECT `+jobCols+` FROM jobs WHERE ? = '' OR status = ?
		ORDER BY created_at DESC, rowid DESC LIMIT ?`, status, status, limit)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	out := make([]JobView, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, j.view())
	}
	return out, nil
}

// errFinished: cancelling a job that already completed or failed.
var errFinished = errors.New("job already finished")

// Cancel writes cancelled, as the UI does: nothing reaches the
// orchestrator, which learns it from acknowledge.
func (s *Store) Cancel(ctx context.Context, id string) error {
	return s.cancel(ctx, id, time.Now())
}

func (s *Store) cancel(ctx context.Context, id string, now time.Time) error {
	return s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		j, err := getJob(ctx, tx, id)
		if err != nil {
			return err
		}
		if j.Status == backend.StatusCompleted || j.Status == backend.StatusFailed {
			return errFinished
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET status = 'cancelled', updated_at = ? WHERE id = ?`,
			now.UnixMilli(), id); err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		return addEvent(ctx, tx, id, now, EventCancelled, "", false, "was "+j.Status)
	})
}
