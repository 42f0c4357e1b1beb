package journal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// The journal is one append-only file: a record per change, each framed
//
//	uint32 length of body | uint32 CRC-32C of body | body
//	body: op (1 byte) | uvarint length of job id | job id | payload
//
// and made durable by fsync before the change is acknowledged. A record
// costs one write; saves that arrive while another is being written wait
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

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var errClosed = errors.New("journal: closed")

// record is one change, decoded.
type record struct {
	op      op
	jobID   string
	payload []byte
}

// span locates a live record in the file: its payload, and the whole
// record's size (what compaction would keep of it).
type span struct {
	off  int64 // of the payload
	n    int   // payload bytes
	size int64 // the whole record
}

func appendRecord(buf []byte, r record) []byte {
	var id [binary.MaxVarintLen64]byte
	idn := binary.PutUvarint(id[:], uint64(len(r.jobID)))
	bodyLen := 1 + idn + len(r.jobID) + len(r.payload)
	start := len(buf)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(bodyLen))
	buf = binary.LittleEndian.AppendUint32(buf, 0) // the CRC, below
	buf = append(buf, byte(r.op))
	buf = append(buf, id[:idn]...)
	buf = append(buf, r.jobID...)
	buf = append(buf, r.payload...)
	crc := crc32.Checksum(buf[start+headerSize:], crcTable)
	binary.LittleEndian.PutUint32(buf[start+4:], crc)
	return buf
}

// scan reads records from r until its end or the first record that is not
// whole and intact, and returns how many bytes the intact records take.
// An fsync'd append-only file can only be torn at its end (a write the
// process or machine died in), so what follows a bad record is that write.
func scan(r io.Reader, each func(rec record, payloadOff, size int64)) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var off int64
	var hdr [headerSize]byte
	var body []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return off, nil
			}
			return off, err
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if n < 2 || n > maxBody {
			return off, nil
		}
		body = append(body[:0], make([]byte, n)...)
		if _, err := io.ReadFull(br, body); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return off, nil
			}
			return off, err
		}
		if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
			return off, nil
		}
		rec, head, ok := decodeBody(body)
		if !ok {
			return off, nil
		}
		size := int64(headerSize) + int64(n)
		each(rec, off+headerSize+int64(head), size)
		off += size
	}
}

// decodeBody splits a body; head is where its payload starts. The payload
// aliases body.
func decodeBody(body []byte) (rec record, head int, ok bool) {
	o := op(body[0])
	idLen, k := binary.Uvarint(body[1:])
	if k <= 0 || idLen == 0 || idLen > uint64(len(body)-1-k) || o < opEntry || o > opRemove {
		return record{}, 0, false
	}
	head = 1 + k + int(idLen)
	return record{op: o, jobID: string(body[1+k : head]), payload: body[head:]}, head, true
}

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

	sync func(*os.File) error // (*os.File).Sync; tests count and hold it
}

// batch is records written together with one fsync.
type batch struct {
	buf  []byte
	recs []batched
	done chan struct{} // closed once written (err says how)
	lead chan struct{} // one of its callers leads the write (see append)
	err  error
}

type batched struct {
	op    op
	jobID string
	off   int // of the payload, in buf
	n     int
	size  int64
}

func newBatch() *batch { return &batch{done: make(chan struct{}), lead: make(chan struct{}, 1)} }

func (b *batch) add(r record) {
	start := len(b.buf)
	b.buf = appendRecord(b.buf, r)
	size := len(b.buf) - start
	b.recs = append(b.recs, batched{op: r.op, jobID: r.jobID, off: len(b.buf) - len(r.payload), n: len(r.payload),
		size: int64(size)})
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
	size, err := scan(f, l.index)
	if err != nil {
		f.Close()
		return nil, err
	}
	if info, err := f.Stat(); err == nil && info.Size() != size {
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
	drop := func(m map[string]span) {
		if old, ok := m[r.jobID]; ok {
			l.live -= old.size
			delete(m, r.jobID)
		}
	}
	s := span{off: payloadOff, n: len(r.payload), size: size}
	switch r.op {
	case opEntry:
		drop(l.entries)
		l.entries[r.jobID], l.live = s, l.live+size
	case opHelpers:
		drop(l.helpers)
		l.helpers[r.jobID], l.live = s, l.live+size
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
	l.mu.Unlock()
	b.err = l.write(b)
	l.mu.Lock()
	if b.err == nil {
		for _, r := range b.recs {
			l.index(record{op: r.op, jobID: r.jobID, payload: b.buf[r.off : r.off+r.n]}, l.size+int64(r.off), r.size)
		}
		l.size += int64(len(b.buf))
	}
	close(b.done)
	if l.size >= compactMin && l.size >= compactRatio*l.live {
		l.mu.Unlock()
		err := l.compact()
		l.mu.Lock()
		if err != nil {
			// The log stays as it was, whole; compaction waits for it
			// to grow again.
			l.live = l.size
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
// Only the leader calls it. A failed write is cut off again, so the next
// batch does not follow a torn record.
func (l *logFile) write(b *batch) error {
	if _, err := l.f.WriteAt(b.buf, l.size); err != nil {
		_ = l.f.Truncate(l.size)
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
// old file and index until the swap.
func (l *logFile) compact() error {
	path := filepath.Join(l.dir, compactName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("journal: compact: %w", err)
	}
	nb := newBatch()
	for _, part := range []struct {
		op   op
		live map[string]span
	}{{opEntry, l.entries}, {opHelpers, l.helpers}} {
		for id, s := range part.live {
			payload := make([]byte, s.n)
			if _, err := l.f.ReadAt(payload, s.off); err != nil {
				return fail(err)
			}
			nb.add(record{op: part.op, jobID: id, payload: payload})
		}
	}
	if _, err := f.Write(nb.buf); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(path, filepath.Join(l.dir, logName)); err != nil {
		return fail(err)
	}
	if err := syncDir(l.dir); err != nil {
		// Renamed but maybe not durably: either file holds every live
		// record, so the new one is used.
		_ = err
	}
	entries, helpers := map[string]span{}, map[string]span{}
	for _, r := range nb.recs {
		s := span{off: int64(r.off), n: r.n, size: r.size}
		if r.op == opEntry {
			entries[r.jobID] = s
		} else {
			helpers[r.jobID] = s
		}
	}
	l.mu.Lock()
	old := l.f
	l.f, l.size, l.live, l.entries, l.helpers = f, int64(len(nb.buf)), int64(len(nb.buf)), entries, helpers
	l.mu.Unlock()
	return old.Close()
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
