package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cronium/orchestrator/backend"
)

// execRecord is one row of executions.
type execRecord struct {
	ID          string
	JobID       string
	ServerID    sql.NullString
	ServerName  sql.NullString
	Status      string
	ExitCode    sql.NullInt64
	Output      sql.NullString
	Error       sql.NullString
	Metadata    sql.NullString
	Timings     string
	StartedAt   sql.NullInt64
	CompletedAt sql.NullInt64
	CreatedAt   int64
	UpdatedAt   int64
}

const execCols = `id, job_id, server_id, server_name, status, exit_code, output, error, metadata, timings,
	started_at, completed_at, created_at, updated_at`

func scanExec(sc scanner) (execRecord, error) {
	var e execRecord
	err := sc.Scan(&e.ID, &e.JobID, &e.ServerID, &e.ServerName, &e.Status, &e.ExitCode, &e.Output,
		&e.Error, &e.Metadata, &e.Timings, &e.StartedAt, &e.CompletedAt, &e.CreatedAt, &e.UpdatedAt)
	return e, err
}

// maxExecutionID mirrors the real column, varchar(100): longer is a 500.
const maxExecutionID = 100

func (s *Store) createExecution(ctx context.Context, id, jobID, serverID, serverName, orchID string, now time.Time) error {
	if len(id) > maxExecutionID {
		return fmt.Errorf("value too long for type character varying(%d)", maxExecutionID)
	}
	return s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// A duplicate id violates the primary key, an unknown job the
		// foreign key: both are 500s, as in the real backend.
		if _, err := tx.ExecContext(ctx, `INSERT INTO executions (id, job_id, server_id, server_name, created_at, updated_at)
			VALUES (?, ?, NULLIF(?, ''), NULLIF(?, ''), ?, ?)`,
			id, jobID, serverID, serverName, now.UnixMilli(), now.UnixMilli()); err != nil {
			return fmt.Errorf("create execution: %w", err)
		}
		return addEvent(ctx, tx, jobID, now, EventExecutionCreated, orchID, false, id)
	})
}

// execUpdate is the decoded body of PUT /executions/{id}/update; nil means
// absent (JavaScript's undefined and null alike).
type execUpdate struct {
	Status      *string
	StartedAt   *time.Time
	CompletedAt *time.Time
	ExitCode    *int
	Output      *string
	Error       *string
	Metadata    json.RawMessage
	Timings     map[string]json.RawMessage // phase timestamps and durations, merged
}

// terminal mirrors the real route: completedAt present, or status
// completed/failed, makes the update set the job's status too.
func (u execUpdate) terminal() bool {
	return u.CompletedAt != nil || u.Status != nil && (*u.Status == backend.StatusCompleted || *u.Status == backend.StatusFailed)
}

func (s *Store) updateExecution(ctx context.Context, id string, u execUpdate, orchID string, now time.Time) (execRecord, error) {
	var e execRecord
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		e, err = scanExec(tx.QueryRowContext(ctx, `SELECT `+execCols+` FROM executions WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return fmt.Errorf("get execution: %w", err)
		}
		applyExecUpdate(&e, u, now)
		if _, err := tx.ExecContext(ctx, `UPDATE executions SET status = ?, exit_code = ?, output = ?, error = ?,
			metadata = ?, timings = ?, started_at = ?, completed_at = ?, updated_at = ? WHERE id = ?`,
			e.Status, e.ExitCode, e.Output, e.Error, e.Metadata, e.Timings, e.StartedAt, e.CompletedAt,
			e.UpdatedAt, id); err != nil {
			return fmt.Errorf("update execution: %w", err)
		}
		detail := "output " + strconv.Itoa(len(e.Output.String)) + " bytes"
		if !u.terminal() {
			return addEvent(ctx, tx, e.JobID, now, EventExecutionUpdated, orchID, false, detail)
		}
		// Like the real route: the job takes the execution's status,
		// output, error, exit code and completion time.
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET status = ?,
				output_stdout = COALESCE(?, output_stdout), output_stderr = COALESCE(?, output_stderr),
				last_error = COALESCE(?, last_error), completed_at = COALESCE(?, completed_at),
				result = CASE WHEN ? IS NULL THEN result ELSE json_object('exitCode', ?) END,
				updated_at = ? WHERE id = ?`,
			e.Status, e.Output, e.Error, e.Error, e.CompletedAt, e.ExitCode, e.ExitCode, now.UnixMilli(), e.JobID); err != nil {
			return fmt.Errorf("update job from execution: %w", err)
		}
		return addEvent(ctx, tx, e.JobID, now, EventExecutionUpdated, orchID, true, detail+", job "+e.Status)
	})
	return e, err
}

func applyExecUpdate(e *execRecord, u execUpdate, now time.Time) {
	if u.Status != nil {
		e.Status = *u.Status
	}
	if u.StartedAt != nil {
		e.StartedAt = sql.NullInt64{Int64: u.StartedAt.UnixMilli(), Valid: true}
	}
	if u.CompletedAt != nil {
		e.CompletedAt = sql.NullInt64{Int64: u.CompletedAt.UnixMilli(), Valid: true}
	}
	if u.ExitCode != nil {
		e.ExitCode = sql.NullInt64{Int64: int64(*u.ExitCode), Valid: true}
	}
	if u.Output != nil {
		e.Output = sql.NullString{String: *u.Output, Valid: true}
	}
	if u.Error != nil {
		e.Error = sql.NullString{String: *u.Error, Valid: true}
	}
	if u.Metadata != nil {
		e.Metadata = sql.NullString{String: string(u.Metadata), Valid: true}
	}
	if len(u.Timings) > 0 {
		timings := map[string]json.RawMessage{}
		_ = json.Unmarshal([]byte(e.Timings), &timings) // written by us: valid
		for k, v := range u.Timings {
			timings[k] = v
		}
		b, _ := json.Marshal(timings)
		e.Timings = string(b)
	}
	e.UpdatedAt = now.UnixMilli()
}

func (s *Store) executions(ctx context.Context, jobID string) ([]execRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+execCols+` FROM executions WHERE job_id = ? ORDER BY created_at, rowid`, jobID)
	if err != nil {
		return nil, fmt.Errorf("executions: %w", err)
	}
	defer rows.Close()
	var out []execRecord
	for rows.Next() {
		e, err := scanExec(rows)
		if err != nil {
			return nil, fmt.Errorf("executions: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// latestExecution is the job's newest execution, in the order of
// executions; nil when it has none.
func (s *Store) latestExecution(ctx context.Context, jobID string) (*execRecord, error) {
	e, err := scanExec(s.db.QueryRowContext(ctx, `SELECT `+execCols+` FROM executions WHERE job_id = ?
		ORDER BY created_at DESC, rowid DESC LIMIT 1`, jobID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("latest execution: %w", err)
	}
	return &e, nil
}

// serverRecord is a stored SSH server, credentials included.
type serverRecord struct {
	ID         int64
	Name       string
	Host       string
	Port       int
	Username   string
	PrivateKey string
	Passphrase string
	Password   string
}

func insertServer(ctx context.Context, tx *sql.Tx, sv serverRecord) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO servers (name, host, port, username, private_key, passphrase, password)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, sv.Name, sv.Host, sv.Port, sv.Username, sv.PrivateKey, sv.Passphrase, sv.Password)
	if err != nil {
		return 0, fmt.Errorf("insert server: %w", err)
	}
	return res.LastInsertId()
}

func (s *Store) server(ctx context.Context, id string) (serverRecord, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return serverRecord{}, errNotFound
	}
	var sv serverRecord
	err = s.db.QueryRowContext(ctx, `SELECT id, name, host, port, username, private_key, passphrase, password
		FROM servers WHERE id = ?`, n).Scan(&sv.ID, &sv.Name, &sv.Host, &sv.Port, &sv.Username,
		&sv.PrivateKey, &sv.Passphrase, &sv.Password)
	if errors.Is(err, sql.ErrNoRows) {
		return sv, errNotFound
	}
	if err != nil {
		return sv, fmt.Errorf("get server: %w", err)
	}
	return sv, nil
}
