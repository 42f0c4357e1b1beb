// Package journal keeps each running job's progress in the state
// directory, so that a restarted orchestrator (kill -9, an upgrade, a
// crash) picks its jobs up instead of losing them: a record in an
// append-only log (see log.go) at every step recovery needs, durable
// before the step goes on, and a removal when the job has ended. A job's
// kept output, large and not needed durably, is a file of its own.
//
// The log holds the job as the backend sent it, environment values and
// server credentials included: the directory is 0700 and the files 0600,
// like the state directory they live in.
package journal

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/cronium/orchestrator/output"
)

// Stage is how far a job had come when its entry was written.
type Stage string

const (
	// Claimed: nothing was started; recovery releases the job.
	Claimed Stage = "claimed"
	// Running: the backend was told the job runs and the executor may have
	// started it; recovery resumes the execution.
	Running Stage = "running"
	// Completing: the result is known and Completion is owed to the
	// backend; recovery sends it, once.
	Completing Stage = "completing"
)

// version is the entry format; an entry of another version is unreadable.
const version = 1

// Entry is one job's record.
type Entry struct {
	Version     int             `json:"version"`
	JobID       string          `json:"jobId"`
	Stage       Stage           `json:"stage"`
	Job         json.RawMessage `json:"job"` // the backend's job JSON
	ClaimedAt   time.Time       `json:"claimedAt"`
	ExecutionID string          `json:"executionId"`
	Executor    string          `json:"executor,omitempty"`
	StartedAt   time.Time       `json:"startedAt,omitzero"`
	// Attempt is the job's attempt under its retry policy, from 1; each
	// has its own ExecutionID.
	Attempt int `json:"attempt,omitempty"`
	// Launched says the executor started the execution: if a restarted
	// process finds it gone, it was removed, and is not started again.
	Launched bool `json:"launched,omitempty"`
	// Completion is the /complete body owed (Stage Completing). It may
	// have reached the backend just before a restart: recovery asks
	// before it sends it again.
	Completion json.RawMessage `json:"completion,omitempty"`
	// CompletionBody, when set, is saved as the completion instead of
	// Completion: the /complete body as it is encoded, read into the log
	// as it is written, so that a large output is not held once more as
	// JSON. It must read as one valid JSON value. Load returns it as
	// Completion.
	CompletionBody Body `json:"-"`
}

// Unreadable is an entry that could not be read; its job can only be
// ended.
type Unreadable struct {
	JobID string
	Err   error
}

// Dir is a journal directory. One process at a time opens it.
type Dir struct {
	path string
	log  *logFile
}

// suffix names an entry of the earlier layout, a file per job (see
// migrate).
const suffix = ".json"

// tmpPattern names a write in progress (see writeFile).
const tmpPattern = ".tmp-*"

// Open creates the directory if needed and reads the log, cutting off a
// record that a killed process was writing. Temporary files of writes a
// killed process left unfinished are removed: nothing in them counts.
// Entries of the earlier layout move into the log, and kept output of
// jobs without an entry is removed.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	stale, _ := filepath.Glob(filepath.Join(path, tmpPattern))
	for _, f := range stale {
		_ = os.Remove(f)
	}
	l, err := openLog(path)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	d := &Dir{path: path, log: l}
	if err := d.migrate(); err != nil {
		l.close()
		return nil, err
	}
	d.sweep()
	return d, nil
}

// Close waits for a write in progress and closes the log; later saves
// fail.
func (d *Dir) Close() error { return d.log.close() }

// file names a job's file by the hex of its id: ids come from the
// backend and must not choose paths.
func (d *Dir) file(jobID string) string {
	return filepath.Join(d.path, hex.EncodeToString([]byte(jobID))+suffix)
}

// Save replaces the job's entry. It returns once the entry is durable.
func (d *Dir) Save(e Entry) error {
	if e.JobID == "" {
		return errors.New("journal: entry without a job id")
	}
	e.Version = version
	data, body, tail, err := encodeEntry(e)
	if err == nil && body != nil && body.Len() <= inlineBody {
		data, body, tail, err = inline(data, body, tail)
	}
	if err != nil {
		return fmt.Errorf("journal: encode %s: %w", e.JobID, err)
	}
	if err := d.log.append(record{op: opEntry, jobID: e.JobID, payload: data, body: body, tail: tail}); err != nil {
		return fmt.Errorf("journal: save %s: %w", e.JobID, err)
	}
	return nil
}

// Remove deletes the job's entry, kept output and helpers; missing ones
// are not an error. It returns once the removal is durable.
func (d *Dir) Remove(jobID string) error {
	d.log.mu.Lock()
	_, e := d.log.entries[jobID]
	_, h := d.log.helpers[jobID]
	d.log.mu.Unlock()
	if e || h {
		if err := d.log.append(record{op: opRemove, jobID: jobID}); err != nil {
			return fmt.Errorf("journal: remove %s: %w", jobID, err)
		}
	}
	// Kept output is not durable: one a crash leaves is swept at Open.
	if err := os.Remove(d.outputFile(jobID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: remove %s: %w", jobID, err)
	}
	return nil
}

const outputSuffix = ".out"

func (d *Dir) outputFile(jobID string) string {
	return filepath.Join(d.path, hex.EncodeToString([]byte(jobID))+outputSuffix)
}

// SaveOutput replaces the job's kept output: a copy of its output log
// as of some snapshot, maybe older than the last one shipped. It is
// replaced atomically but not synced to disk: it must survive the
// process, not the machine. An older or missing copy costs nothing: the
// execution's own log (a container's, a spool) is replayed from the
// older offsets.
func (d *Dir) SaveOutput(jobID string, k output.Kept) error {
	write := func(w io.Writer) error { return writeKept(w, k) }
	if err := writeFileWith(d.path, d.outputFile(jobID), write, false); err != nil {
		return fmt.Errorf("journal: save output of %s: %w", jobID, err)
	}
	return nil
}

// LoadOutput returns the job's kept output; ok is false when none was
// kept or it cannot be read (then the execution's log is replayed whole).
func (d *Dir) LoadOutput(jobID string) (k output.Kept, ok bool) {
	data, err := os.ReadFile(d.outputFile(jobID))
	if err != nil {
		return output.Kept{}, false
	}
	if k, err = readKept(data); err != nil {
		return output.Kept{}, false
	}
	return k, true
}

// Load reads every entry, in job id order. An entry that cannot be read or
// decoded is returned as Unreadable, with its job id, and never stops the
// others.
func (d *Dir) Load() ([]Entry, []Unreadable, error) {
	d.log.mu.Lock()
	ids := make([]string, 0, len(d.log.entries))
	for id := range d.log.entries {
		ids = append(ids, id)
	}
	d.log.mu.Unlock()
	sort.Strings(ids)
	var entries []Entry
	var bad []Unreadable
	for _, id := range ids {
		data, ok, err := d.log.read(entriesOf, id)
		if !ok {
			continue // removed meanwhile
		}
		var e Entry
		if err == nil {
			e, err = decode(data, id)
		}
		if err != nil {
			bad = append(bad, Unreadable{JobID: id, Err: err})
			continue
		}
		entries = append(entries, e)
	}
	return entries, bad, nil
}

func entriesOf(l *logFile) map[string]span { return l.entries }
func helpersOf(l *logFile) map[string]span { return l.helpers }

// decode reads an entry and checks it is one recovery can act on.
func decode(data []byte, jobID string) (Entry, error) {
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return Entry{}, fmt.Errorf("corrupt entry: %w", err)
	}
	switch {
	case e.Version != version:
		return Entry{}, fmt.Errorf("entry format %d, want %d", e.Version, version)
	case e.JobID != jobID:
		return Entry{}, fmt.Errorf("entry names job %q", e.JobID)
	case e.Stage != Claimed && e.Stage != Running && e.Stage != Completing:
		return Entry{}, fmt.Errorf("unknown stage %q", e.Stage)
	case len(e.Job) == 0:
		return Entry{}, errors.New("entry has no job")
	case e.Stage == Completing && len(e.Completion) == 0:
		return Entry{}, errors.New("completing entry has no completion")
	}
	return e, nil
}

// writeFile writes data to path through a temporary file and renames it
// into place: the path holds the old or the new content, whole. Durable,
// it fsyncs the file and the directory too, so that this holds after a
// crash of the machine, not only of the process.
func writeFile(dir, path string, data []byte, durable bool) error {
	return writeFileWith(dir, path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, durable)
}

// writeFileWith is writeFile with the content written by write.
func writeFileWith(dir, path string, write func(io.Writer) error, durable bool) error {
	tmp, err := os.CreateTemp(dir, tmpPattern)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if durable {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// inlineBody is the largest body read into its record before the write:
// a body of its own costs its batch two more writes, which only a large
// one repays.
const inlineBody = 64 << 10

// inline reads body into the payload: data, body and tail joined.
func inline(data []byte, body Body, tail []byte) ([]byte, Body, []byte, error) {
	n := len(data) + int(body.Len())
	joined := make([]byte, n, n+len(tail))
	copy(joined, data)
	r := body.Reader()
	if _, err := io.ReadFull(r, joined[len(data):]); err != nil {
		return nil, nil, nil, fmt.Errorf("a body of %d bytes: %w", body.Len(), err)
	}
	if m, _ := r.Read(make([]byte, 1)); m > 0 {
		return nil, nil, nil, fmt.Errorf("a body of %d bytes gave more", body.Len())
	}
	return append(joined, tail...), nil, nil, nil
}

// encodeEntry is e as JSON: data, then body and tail, in this order. A
// completion, which holds the job's whole output, is the body: written as
// it is read, not copied into the record (see CompletionBody).
func encodeEntry(e Entry) (data []byte, body Body, tail []byte, err error) {
	body = e.CompletionBody
	if body == nil && len(e.Completion) > 0 {
		if !json.Valid(e.Completion) {
			return nil, nil, nil, errors.New("the completion is not valid JSON")
		}
		body = bytesBody(e.Completion)
	}
	e.Completion = nil
	if data, err = json.Marshal(e); err != nil || body == nil {
		return data, nil, nil, err
	}
	// An object: it ends in }.
	return append(data[:len(data)-1], `,"completion":`...), body, []byte("}"), nil
}
