package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/cronium/orchestrator/backend"
)

// Live lines: like Cronium's Socket.IO server, the embedded backend takes
// POST /broadcast/log-line {"logId":n,"line":"..","stream":"stdout"|"stderr"},
// unauthenticated, one line of a running job's output per request (the
// orchestrator sends them as they are printed, when logs.live_url is
// set). A job's logId is its sequence number (see submit).
//
// What comes in is shown in the job's output view on top of the latest
// snapshot (see overlay), so a follower sees each line as it is printed
// instead of at the next snapshot; snapshots and the final output stay
// what the view is built from.

// Bounds of what is kept: per stream of a job (beyond it, the job's view
// goes back to snapshots alone), and jobs at once (the oldest go first).
const (
	liveMaxBytes = 1 << 20
	liveMaxJobs  = 256
	// liveBits is the low part of an output version that counts live
	// lines (see overlayVersion).
	liveBits     = 24
	liveMaxLines = 1<<liveBits - 1
)

// liveStore is the live lines of running jobs. Safe for concurrent use.
type liveStore struct {
	mu      sync.Mutex
	jobs    map[string]*liveJob
	order   []string // job ids, oldest first
	changes broadcast
}

type liveJob struct {
	text [2]strings.Builder // stdout, stderr
	// lines counts every line taken for the job, never reset: it makes
	// the view's version change.
	lines int64
	full  bool // a stream outgrew liveMaxBytes: the view is snapshots alone
}

func streamIndex(s string) (int, bool) {
	switch s {
	case "stdout":
		return 0, true
	case "stderr":
		return 1, true
	}
	return 0, false
}

func (l *liveStore) add(jobID string, stream int, line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.jobs == nil {
		l.jobs = map[string]*liveJob{}
	}
	j := l.jobs[jobID]
	if j == nil {
		if len(l.order) >= liveMaxJobs {
			delete(l.jobs, l.order[0])
			l.order = l.order[1:]
		}
		j = &liveJob{}
		l.jobs[jobID] = j
		l.order = append(l.order, jobID)
	}
	if j.full || j.lines >= liveMaxLines {
		return
	}
	j.lines++
	if j.text[stream].Len()+len(line)+1 > liveMaxBytes {
		j.full = true
		j.text = [2]strings.Builder{}
	} else {
		j.text[stream].WriteString(line)
		j.text[stream].WriteByte('\n')
	}
	l.changes.notify()
}

// restart empties a job's lines when a new execution of it begins (a
// retried job's output starts afresh); its count goes on.
func (l *liveStore) restart(jobID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if j := l.jobs[jobID]; j != nil {
		j.text, j.full = [2]strings.Builder{}, false
	}
}

func (l *liveStore) forget(jobID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.jobs[jobID]; !ok {
		return
	}
	delete(l.jobs, jobID)
	for i, id := range l.order {
		if id == jobID {
			l.order = append(l.order[:i], l.order[i+1:]...)
			break
		}
	}
}

// view lays the job's live lines over o (a snapshot) and sets its
// version. A final view is the final output alone.
func (l *liveStore) view(jobID string, o OutputView) OutputView {
	if o.Final {
		l.forget(jobID)
		o.Version = overlayVersion(o.Version, liveMaxLines) // beyond any live count of this event
		return o
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	j := l.jobs[jobID]
	if j == nil {
		o.Version = overlayVersion(o.Version, 0)
		return o
	}
	if !j.full {
		o.Stdout = overlay(o.Stdout, j.text[0].String())
		o.Stderr = overlay(o.Stderr, j.text[1].String())
	}
	o.Version = overlayVersion(o.Version, j.lines)
	return o
}

// overlayVersion combines the job's event version with its live-line
// count: either one changing changes the view's version.
func overlayVersion(events, lines int64) int64 { return events<<liveBits | min(lines, liveMaxLines) }

// overlay is what a follower is shown of one stream: the live lines when
// they hold every complete line of the snapshot and more, else the
// snapshot. Both carry the same masked, sanitised text, so the live lines
// normally extend the snapshot; when they do not (a line dropped on the
// way, a secret cut at the snapshot's end, the head/tail cap), the
// snapshot is what is shown, and the next ones take over.
func overlay(snapshot, live string) string {
	complete := snapshot[:strings.LastIndexByte(snapshot, '\n')+1]
	if len(live) > len(complete) && strings.HasPrefix(live, complete) {
		return live
	}
	return snapshot
}

// liveLineBody is what Cronium's server takes: logId a number (a numeric
// string is accepted too).
type liveLineBody struct {
	LogID  backend.FlexString `json:"logId"`
	Line   *string            `json:"line"`
	Stream string             `json:"stream"`
}

var errNoLiveJob = errors.New("no job has this logId")

func (s *Server) handleLiveLine(w http.ResponseWriter, r *http.Request) {
	var body liveLineBody
	if err := readBody(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid line: "+err.Error())
		return
	}
	stream, ok := streamIndex(body.Stream)
	if !ok || body.Line == nil {
		writeError(w, http.StatusBadRequest, `want {"logId":n,"line":"..","stream":"stdout"|"stderr"}`)
		return
	}
	jobID, running, err := s.store.jobByLogID(r.Context(), body.LogID.String())
	switch {
	case errors.Is(err, errNoLiveJob):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		writeFailure(w, err, "")
		return
	}
	if running { // lines of a job that ended are the final output's already
		s.live.add(jobID, stream, *body.Line)
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// jobByLogID finds the job whose metadata.logId is logID: its sequence
// number, which is its rowid (see submit). running is false once the job
// is terminal.
func (s *Store) jobByLogID(ctx context.Context, logID string) (id string, running bool, err error) {
	n, err := strconv.ParseInt(logID, 10, 64)
	if err != nil || n <= 0 {
		return "", false, errNoLiveJob
	}
	var status string
	err = s.db.QueryRowContext(ctx, `SELECT id, status FROM jobs WHERE rowid = ?`, n).Scan(&id, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, errNoLiveJob
	}
	if err != nil {
		return "", false, fmt.Errorf("job by logId: %w", err)
	}
	return id, !terminal(status), nil
}

// output is the job's output view with its live lines laid over.
func (s *Server) output(ctx context.Context, id string) (OutputView, error) {
	o, err := s.store.Output(ctx, id)
	if err != nil {
		return o, err
	}
	return s.live.view(id, o), nil
}
