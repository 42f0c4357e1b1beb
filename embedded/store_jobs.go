package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// jobRecord is one row of jobs.
type jobRecord struct {
	rowid           int64
	ID              string
	Type            string
	Status          string
	Priority        int
	Payload         string
	Metadata        string
	OrchestratorID  sql.NullString
	ScheduledFor    int64
	StartedAt       sql.NullInt64
	CompletedAt     sql.NullInt64
	Result          sql.NullString
	Attempts        int
	LastError       sql.NullString
	OutStdout       sql.NullString // the final output, from /complete
	OutStderr       sql.NullString
	TerminalUpdates int
	CreatedAt       int64
	UpdatedAt       int64
}

const jobCols = `rowid, id, type, status, priority, payload, metadata, orchestrator_id, scheduled_for,
	started_at, completed_at, result, attempts, last_error, output_stdout, output_stderr,
	terminal_updates, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanJob(sc scanner) (jobRecord, error) {
	var j jobRecord
	err := sc.Scan(&j.rowid, &j.ID, &j.Type, &j.Status, &j.Priority, &j.Payload, &j.Metadata,
		&j.OrchestratorID, &j.ScheduledFor, &j.StartedAt, &j.CompletedAt, &j.Result, &j.Attempts,
		&j.LastError, &j.OutStdout, &j.OutStderr, &j.TerminalUpdates, &j.CreatedAt, &j.UpdatedAt)
	return j, err
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getJob(ctx context.Context, q querier, id string) (jobRecord, error) {
	j, err := scanJob(q.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return j, errNotFound
	}
	if err != nil {
		return j, fmt.Errorf("get job %s: %w", id, err)
	}
	return j, nil
}

func queryJobs(ctx context.Context, q querier, query string, args ...any) ([]jobRecord, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []jobRecord
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, rows.Err()
}

// claim gives orchID up to limit queued, unowned, due jobs, highest
// priority first, then oldest. Its transaction holds the write lock from
// BEGIN (see Store), so no other claim interleaves; the UPDATE re-checks
// status and owner as the real backend's conditional update does. The
// claim is committed before the caller answers (like the real backend, a
// lost response leaves the jobs claimed).
func (s *Store) claim(ctx context.Context, orchID string, limit int, now time.Time) ([]jobRecord, error) {
	var jobs []jobRecord
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		jobs, err = queryJobs(ctx, tx, `UPDATE jobs SET status = 'claimed', orchestrator_id = ?, updated_at = ?
			WHERE id IN (SELECT id FROM jobs
				WHERE status = 'queued' AND orchestrator_id IS NULL AND scheduled_for <= ?
				ORDER BY priority DESC, created_at ASC, rowid ASC LIMIT ?)
			AND status = 'queued' AND orchestrator_id IS NULL
			RETURNING `+jobCols, orchID, now.UnixMilli(), now.UnixMilli(), limit)
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		for _, j := range jobs {
			if err := addEvent(ctx, tx, j.ID, now, EventClaimed, orchID, false, ""); err != nil {
				return err
			}
		}
		return nil
	})
	// RETURNING does not keep the subquery's order.
	sort.Slice(jobs, func(a, b int) bool {
		ja, jb := jobs[a], jobs[b]
		if ja.Priority != jb.Priority {
			return ja.Priority > jb.Priority
		}
		if ja.CreatedAt != jb.CreatedAt {
			return ja.CreatedAt < jb.CreatedAt
		}
		return ja.rowid < jb.rowid
	})
	return jobs, err
}

// errNotOwner: acknowledge by an orchestrator that does not hold the job.
var errNotOwner = errors.New("not owner")

// acknowledge returns the job's row when orchID holds it; it changes
// nothing but the event log.
func (s *Store) acknowledge(ctx context.Context, id, orchID string, now time.Time) (jobRecord, error) {
	var j jobRecord
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		if j, err = getJob(ctx, tx, id); err != nil {
			return err
		}
		if j.OrchestratorID.String != orchID {
			return errNotOwner
		}
		return addEvent(ctx, tx, id, now, EventAcknowledged, orchID, false, j.Status)
	})
	return j, err
}

// jobEvent describes the event an update of a job leaves in its log.
type jobEvent struct {
	kind     string
	orchID   string
	terminal bool
	detail   string
}

// updateJob applies "SET <set>" to job id, logs ev and returns the row as
// it is afterwards. There is no state machine: like the real backend, no
// update looks at the current status.
func (s *Store) updateJob(ctx context.Context, id string, now time.Time, ev jobEvent, set string, args ...any) (jobRecord, error) {
	var j jobRecord
	err := s.inTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET `+set+`, updated_at = ? WHERE id = ?`,
			append(args, now.UnixMilli(), id)...)
		if err != nil {
			return fmt.Errorf("update job %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNotFound
		}
		if err := addEvent(ctx, tx, id, now, ev.kind, ev.orchID, ev.terminal, ev.detail); err != nil {
			return err
		}
		j, err = getJob(ctx, tx, id)
		return err
	})
	return j, err
}

// orphaned lists the jobs orchID holds in claimed or running, at most 100.
func (s *Store) orphaned(ctx context.Context, orchID string) ([]jobRecord, error) {
	jobs, err := queryJobs(ctx, s.db, `SELECT `+jobCols+` FROM jobs
		WHERE orchestrator_id = ? AND status IN ('claimed', 'running')
		ORDER BY created_at, rowid LIMIT 100`, orchID)
	if err != nil {
		return nil, fmt.Errorf("orphaned: %w", err)
	}
	return jobs, nil
}

// rawRow is a job row as the real backend's ORM serialises it (camelCase
// columns): what /acknowledge and /orphaned return.
type rawRow struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Status         string          `json:"status"`
	Priority       int             `json:"priority"`
	Payload        json.RawMessage `json:"payload"`
	Metadata       json.RawMessage `json:"metadata"`
	OrchestratorID *string         `json:"orchestratorId"`
	ScheduledFor   string          `json:"scheduledFor"`
	StartedAt      *string         `json:"startedAt"`
	CompletedAt    *string         `json:"completedAt"`
	Result         json.RawMessage `json:"result"`
	Attempts       int             `json:"attempts"`
	LastError      *string         `json:"lastError"`
	CreatedAt      string          `json:"createdAt"`
	UpdatedAt      string          `json:"updatedAt"`
}

func (j jobRecord) raw() rawRow {
	r := rawRow{
		ID: j.ID, Type: j.Type, Status: j.Status, Priority: j.Priority,
		Payload: json.RawMessage(j.Payload), Metadata: json.RawMessage(j.Metadata),
		ScheduledFor: isoMillis(j.ScheduledFor), StartedAt: isoNull(j.StartedAt),
		CompletedAt: isoNull(j.CompletedAt), Result: json.RawMessage("null"), Attempts: j.Attempts,
		CreatedAt: isoMillis(j.CreatedAt), UpdatedAt: isoMillis(j.UpdatedAt),
	}
	if j.OrchestratorID.Valid {
		r.OrchestratorID = &j.OrchestratorID.String
	}
	if j.Result.Valid {
		r.Result = json.RawMessage(j.Result.String)
	}
	if j.LastError.Valid {
		r.LastError = &j.LastError.String
	}
	return r
}

// wireJob is one element of the queue's "jobs": the page's Job JSON.
type wireJob struct {
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	Priority     int             `json:"priority"`
	CreatedAt    string          `json:"createdAt"`
	ScheduledFor string          `json:"scheduledFor"`
	Attempts     int             `json:"attempts"`
	Execution    json.RawMessage `json:"execution"`
	Metadata     json.RawMessage `json:"metadata"`
}

func (j jobRecord) wire() wireJob {
	return wireJob{
		ID: j.ID, Type: j.Type, Priority: j.Priority,
		CreatedAt: isoMillis(j.CreatedAt), ScheduledFor: isoMillis(j.ScheduledFor), Attempts: j.Attempts,
		Execution: json.RawMessage(j.Payload), Metadata: json.RawMessage(j.Metadata),
	}
}
