// Package embedded is a stand-in for the Cronium backend: the same internal
// API with the same semantics and quirks (../shared/cronium-internal-api.md),
// kept in a SQLite file so that jobs survive restarts, plus a small public
// API to submit and watch jobs. The orchestrator talks to it over HTTP with
// the ordinary backend.Client, so there is one code path.
package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // pure Go: the binary stays static
)

// Store keeps jobs, executions, servers, per-job events and users'
// variables.
//
// It holds a single database connection: every statement is serialised,
// which makes each transaction atomic with respect to every other caller
// of the process. Across processes on one file, transactions begin
// IMMEDIATE: each holds SQLite's write lock from its start, so they do not
// interleave either (see TestClaimIsExclusiveAcrossStoresOnOneFile).
//
// Every committed transaction wakes the requests held until something
// changes (long polls of the queue, followers of a job's output): see
// changes. Only this process's commits wake them; another process writing
// the same file is seen when a held request's wait ends.
type Store struct {
	db      *sql.DB
	changes broadcast
	txq     txQueue // see inTx
}

// Open opens (creating when needed) the store at path and its schema.
func Open(path string) (*Store, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	// NORMAL is durable across process crashes in WAL mode; only a power
	// loss can cost the last commits. That suits a stand-in backend.
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	// Take the write lock at BEGIN: a second process on the same file then
	// waits instead of failing mid-transaction.
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("embedded: create schema in %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

const schema = `
CREATE TABLE IF NOT EXISTS jobs (
	id               TEXT PRIMARY KEY,
	type             TEXT NOT NULL,
	status           TEXT NOT NULL,
	priority         INTEGER NOT NULL DEFAULT 0,
	payload          TEXT NOT NULL,
	metadata         TEXT NOT NULL,
	orchestrator_id  TEXT,
	scheduled_for    INTEGER NOT NULL,
	started_at       INTEGER,
	completed_at     INTEGER,
	result           TEXT,
	attempts         INTEGER NOT NULL DEFAULT 0,
	last_error       TEXT,
	output_stdout    TEXT,
	output_stderr    TEXT,
	terminal_updates INTEGER NOT NULL DEFAULT 0,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, priority DESC, created_at);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (orchestrator_id, status);
CREATE TABLE IF NOT EXISTS executions (
	id           TEXT PRIMARY KEY,
	job_id       TEXT NOT NULL REFERENCES jobs(id),
	server_id    TEXT,
	server_name  TEXT,
	status       TEXT NOT NULL DEFAULT 'pending',
	exit_code    INTEGER,
	output       TEXT,
	error        TEXT,
	metadata     TEXT,
	timings      TEXT NOT NULL DEFAULT '{}',
	started_at   INTEGER,
	completed_at INTEGER,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_job ON executions (job_id, created_at);
CREATE TABLE IF NOT EXISTS servers (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	name        TEXT NOT NULL,
	host        TEXT NOT NULL,
	port        INTEGER NOT NULL,
	username    TEXT NOT NULL,
	private_key TEXT NOT NULL DEFAULT '',
	passphrase  TEXT NOT NULL DEFAULT '',
	password    TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS events (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT,
	job_id          TEXT NOT NULL,
	at              INTEGER NOT NULL,
	kind            TEXT NOT NULL,
	orchestrator_id TEXT NOT NULL DEFAULT '',
	terminal        INTEGER NOT NULL DEFAULT 0,
	detail          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, seq);
CREATE TABLE IF NOT EXISTS variables (
	user_id    TEXT NOT NULL,
	key        TEXT NOT NULL,
	value      TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (user_id, key)
);
`

// errNotFound: the job, execution, server or variable does not exist.
var errNotFound = errors.New("not found")

// Event is one internal call (or public action) that touched a job.
type Event struct {
	Seq            int64     `json:"seq"`
	At             time.Time `json:"at"`
	Kind           string    `json:"kind"`
	OrchestratorID string    `json:"orchestratorId,omitempty"`
	Terminal       bool      `json:"terminal"` // a terminal update: the backend would run the job's actions
	Detail         string    `json:"detail,omitempty"`
}

// Event kinds.
const (
	EventSubmitted        = "submitted"
	EventClaimed          = "claimed"
	EventAcknowledged     = "acknowledged"
	EventStatus           = "status" // Detail: the status
	EventExecutionCreated = "execution created"
	EventExecutionUpdated = "execution updated"
	EventCompleted        = "completed"
	EventFailed           = "failed"
	EventReleased         = "released"
	EventCancelled        = "cancelled"
)

// addEvent appends to the job's event log; a terminal event also counts
// one more terminal update for the job.
func addEvent(ctx context.Context, tx *sql.Tx, jobID string, now time.Time, kind, orchID string, terminal bool, detail string) error {
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO events (job_id, at, kind, orchestrator_id, terminal, detail) VALUES (?, ?, ?, ?, ?, ?)`,
		jobID, now.UnixMilli(), kind, orchID, terminal, detail); err != nil {
		return fmt.Errorf("add event: %w", err)
	}
	if terminal {
		if _, err := tx.ExecContext(ctx,
			`UPDATE jobs SET terminal_updates = terminal_updates + 1 WHERE id = ?`, jobID); err != nil {
			return fmt.Errorf("count terminal update: %w", err)
		}
	}
	return nil
}

// Events returns the job's event log, oldest first.
func (s *Store) Events(ctx context.Context, jobID string) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT seq, at, kind, orchestrator_id, terminal, detail FROM events WHERE job_id = ? ORDER BY seq`, jobID)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer rows.Close()
	events := []Event{}
	for rows.Next() {
		var e Event
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Kind, &e.OrchestratorID, &e.Terminal, &e.Detail); err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		e.At = fromMillis(at)
		events = append(events, e)
	}
	return events, rows.Err()
}

// Times are stored as Unix milliseconds (sortable, JavaScript's
// precision) and sent as ISO-8601 like Date.toISOString.
func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func isoMillis(ms int64) string { return fromMillis(ms).Format("2006-01-02T15:04:05.000Z") }

func isoNull(ms sql.NullInt64) *string {
	if !ms.Valid {
		return nil
	}
	s := isoMillis(ms.Int64)
	return &s
}

func timeNull(ms sql.NullInt64) *time.Time {
	if !ms.Valid {
		return nil
	}
	t := fromMillis(ms.Int64)
	return &t
}
