package journal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// The journal is one append-only file: a record per change (framed as
// record.go says), made durable by fsync before the change is
// acknowledged. A record costs one write; saves that arrive while another is being written wait
// and go out together in the next write, with one fsync for all of them
// (group commit). One file per job cost a file and a directory fsync per
// save, which the disk serialises: a few hundred jobs a second at most.
const logName = "journal.log"

// compactName is a compaction in progress; a killed one is removed at Open.
const compactName = "journal.log.compact"

type op byte

const (
	opEntry   op = 1 // payload: the entry's JSON
	opHelpers op = 2 // payload: what the job's runtime helpers keep
	opRemove  op = 3 // the job's entry and helpers are gone
)

const (
	headerSize = 8
	// maxBody guards the scan: a length beyond it is a torn or foreign
	// header, not a record (an entry holds a job and its script).
	maxBody = 256 << 20
	// Compaction rewrites the live records once the log is this large and
	// at least compactRatio times their size.
	compactMin   = 4 << 20
	compactRatio = 4
)

var errClosed = errors.New("journal: closed")

// logFile is the open journal file and the index of its live records.
// Appends go through batches; at most one goroutine (the leader) writes
// the file at a time, and it alone changes the index and the file.
type logFile struct {
	dir  string
	mu   sync.Mutex
	idle *sync.Cond // signalled when the leader is done (Close waits)

	f       *os.File
	size    int64 // of the intact records
	live    int64 // bytes of the records the index points to
	entries map[string]span
	helpers map[string]span

	next    *batch
	writing bool
	closed  bool
	// failed: a write, fsync or compaction failed, so what the file holds
	// is unknown; no save is acknowledged until the journal is opened
	// again (a retried fsync may report success for lost data).
	failed error

	sync      func(*os.File) error // (*os.File).Sync; tests count and hold it
	compactAt int64                // no compaction below this size (after one failed)
}

// openLog opens (or creates) the log and indexes it. A torn last record
// is cut off: its append never returned, so nothing relied on it.
func openLog(dir string) (*logFile, error) {
	_ = os.Remove(filepath.Join(dir, compactName))
	f, err := os.OpenFile(filepath.Join(dir, logName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	l := &logFile{dir: dir, f: f, entries: map[string]span{}, helpers: map[string]span{}, next: newBatch(),
		sync: (*os.File).Sync}
	l.idle = sync.NewCond(&l.mu)
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	size, err := scan(f, info.Size(), l.index)
	if err != nil {
		f.Close()
		return nil, err
	}
	if info.Size() != size {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, err
		}
	}
	l.size = size
	return l, nil
}

// index applies one record, at payloadOff in the file, to the index.
func (l *logFile) index(r record, payloadOff, size int64) {
	l.indexAt(r.op, r.jobID, span{off: payloadOff, n: int64(len(r.payload)), size: size})
}

func (l *logFile) indexAt(o op, jobID string, s span) {
	drop := func(m map[string]span) {
		if old, ok := m[jobID]; ok {
			l.live -= old.size
			delete(m, jobID)
		}
	}
	switch o {
	case opEntry:
		drop(l.entries)
		l.entries[jobID], l.live = s, l.live+s.size
	case opHelpers:
		drop(l.helpers)
		l.helpers[jobID], l.live = s, l.live+s.size
	case opRemove:
		drop(l.entries)
		drop(l.helpers)
	}
}

// append makes the records durable, with whatever else is waiting. The
// caller that finds no write in progress leads: it writes the waiting
// batch (its own records in it), then hands the lead to a caller of the
// next batch, if any, so that its own save is not held by others'.
func (l *logFile) append(recs ...record) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errClosed
	}
	if l.failed != nil {
		l.mu.Unlock()
		return l.failed
	}
	for _, r := range recs {
		if n := recordSize(r); n > maxBody {
			l.mu.Unlock()
			return fmt.Errorf("journal: a record of %d bytes for job %s, over the %d a record may hold", n, r.jobID, maxBody)
		}
	}
	mine := l.next
	for _, r := range recs {
		mine.add(r)
	}
	lead := !l.writing
	l.writing = true
	l.mu.Unlock()
	for {
		if lead {
			l.lead()
		}
		select {
		case <-mine.done:
			return mine.err
		case <-mine.lead:
			lead = true
		}
	}
}

// lead writes the waiting batch, then hands the lead on or ends it.
func (l *logFile) lead() {
	l.mu.Lock()
	b := l.next
	l.next = newBatch()
	b.err = l.failed
	l.mu.Unlock()
	if b.err == nil {
		b.err = l.write(b)
	}
	l.mu.Lock()
	var refused *bodyError
	if b.err != nil && l.failed == nil && !errors.As(b.err, &refused) {
		l.failed = fmt.Errorf("journal: failed earlier, not written since: %w", b.err)
	}
	if b.err == nil {
		for _, r := range b.recs {
			l.indexAt(r.op, r.jobID, span{off: l.size + r.off, n: r.n, size: r.size})
		}
		l.size += b.size
	}
	close(b.done)
	if l.failed == nil && l.size >= max(compactMin, l.compactAt) && l.size >= compactRatio*l.live {
		l.mu.Unlock()
		renamed, err := l.compact()
		l.mu.Lock()
		switch {
		case err != nil && renamed:
			l.failed = err
		case err != nil:
			// The log is as it was, whole: try again once it has doubled.
			l.compactAt = 2 * l.size
		}
	}
	if len(l.next.recs) > 0 {
		l.next.lead <- struct{}{}
	} else {
		l.writing = false
		l.idle.Broadcast()
	}
	l.mu.Unlock()
}

// write appends a batch at the end of the intact records and syncs it.
// Only the leader calls it. A failure fails the log (see failed); the
// batch is cut off again so that a process that goes on reading does not
// take it for saved.
//
// A body that could not be read fails only its batch, once the batch is
// cut off again: the file is then as it was.
func (l *logFile) write(b *batch) error {
	if err := b.writeAt(l.f, l.size); err != nil {
		var body *bodyError
		if terr := l.f.Truncate(l.size); terr != nil && errors.As(err, &body) {
			err = fmt.Errorf("%v, and cutting it off: %w", body, terr) // the file is unknown now
		}
		return fmt.Errorf("journal: write: %w", err)
	}
	if err := l.sync(l.f); err != nil {
		_ = l.f.Truncate(l.size)
		return fmt.Errorf("journal: sync: %w", err)
	}
	return nil
}

// compact rewrites the live records into a new file and renames it over
// the log. Only the leader calls it, without the lock: readers use the
// old file and index until the swap. renamed says the new file replaced
// the log: an error after that leaves the log's state unknown.
func (l *logFile) compact() (renamed bool, err error) {
	path := filepath.Join(l.dir, compactName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return false, fmt.Errorf("journal: compact: %w", err)
	}
	fail := func(err error) (bool, error) {
		f.Close()
		os.Remove(path)
		return false, fmt.Errorf("journal: compact: %w", err)
	}
	nb := newBatch()
	for _, part := range []struct {
		op   op
		live map[string]span
	}{{opEntry, l.entries}, {opHelpers, l.helpers}} {
		for id, s := range part.live {
			if s.n > inlineBody { // a completion: read while written, not held
				nb.add(record{op: part.op, jobID: id, body: section{io.NewSectionReader(l.f, s.off, s.n)}})
				continue
			}
			payload := make([]byte, s.n)
			if _, err := l.f.ReadAt(payload, s.off); err != nil {
				return fail(err)
			}
			nb.add(record{op: part.op, jobID: id, payload: payload})
		}
	}
	if err := nb.writeAt(f, 0); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(path, filepath.Join(l.dir, logName)); err != nil {
		return fail(err)
	}
	// Until the rename is durable, a crash may bring the old file back
	// without what is appended to the new one.
	if err := syncDir(l.dir); err != nil {
		f.Close()
		return true, fmt.Errorf("journal: compact: sync the directory: %w", err)
	}
	entries, helpers := map[string]span{}, map[string]span{}
	for _, r := range nb.recs {
		s := span{off: r.off, n: r.n, size: r.size}
		if r.op == opEntry {
			entries[r.jobID] = s
		} else {
			helpers[r.jobID] = s
		}
	}
	l.mu.Lock()
	old := l.f
	l.f, l.size, l.live, l.entries, l.helpers = f, nb.size, nb.size, entries, helpers
	l.mu.Unlock()
	old.Close()
	return true, nil
}

// read returns a payload the index points to. It holds the lock through
// the read, so that a compaction cannot close the file under it; reads
// are rare (a process's start).
func (l *logFile) read(m func(*logFile) map[string]span, jobID string) ([]byte, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := m(l)[jobID]
	if !ok {
		return nil, false, nil
	}
	data := make([]byte, s.n)
	if _, err := l.f.ReadAt(data, s.off); err != nil {
		return nil, true, err
	}
	return data, true, nil
}

// close waits for the write in progress and closes the file; later
// appends fail.
func (l *logFile) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	for l.writing {
		l.idle.Wait()
	}
	return l.f.Close()
}
