package journal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// batch is records written together with one fsync. Their framing and
// small payloads are in buf; a large part (a Body) is written where it
// belongs between buf's bytes, read as it is written.
type batch struct {
	buf    []byte
	bodies []*pendingBody // in order of at
	size   int64          // of the records, bodies included
	recs   []batched
	done   chan struct{} // closed once written (err says how)
	lead   chan struct{} // one of its callers leads the write (see append)
	err    error
}

type batched struct {
	op    op
	jobID string
	off   int64 // of the payload, from the batch's start
	n     int64
	size  int64
}

func newBatch() *batch { return &batch{done: make(chan struct{}), lead: make(chan struct{}, 1)} }

func (b *batch) add(r record) {
	start := b.size
	var pending *pendingBody
	before := len(b.buf)
	b.buf, pending = appendRecord(b.buf, r)
	if pending != nil {
		b.bodies = append(b.bodies, pending)
	}
	size := int64(len(b.buf)-before) + r.payloadLen() - int64(len(r.payload)+len(r.tail))
	n := r.payloadLen()
	b.size += size
	b.recs = append(b.recs, batched{op: r.op, jobID: r.jobID, off: start + size - n, n: n, size: size})
}

// writeAt writes the batch at off in f. Each body goes first and
// completes its record's CRC, then the bytes of buf before it, the
// record's header among them: so buf is written with every CRC in place.
func (b *batch) writeAt(f io.WriterAt, off int64) error {
	from := 0 // of buf, not written yet
	for _, p := range b.bodies {
		at := off + int64(p.at-from)
		w := &crcWriter{w: io.NewOffsetWriter(f, at), crc: p.crc}
		n, err := io.Copy(w, bodyReader{p.body.Reader()})
		if err == nil && n != p.body.Len() {
			err = &bodyError{fmt.Errorf("a body of %d bytes gave %d", p.body.Len(), n)}
		}
		if err != nil {
			return err
		}
		crc := crc32.Update(w.crc, crcTable, b.buf[p.at:p.at+p.tail])
		binary.LittleEndian.PutUint32(b.buf[p.crcAt:], crc)
		if _, err := f.WriteAt(b.buf[from:p.at], off); err != nil {
			return err
		}
		off, from = at+n, p.at
	}
	_, err := f.WriteAt(b.buf[from:], off)
	return err
}

// bodyError is a Body that could not be read, or not as long as it said:
// the fault of that record, not of the file.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "journal: a record's body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// bodyReader marks its reader's errors as the body's.
type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyError{err}
	}
	return n, err
}

// crcWriter passes writes on and keeps their CRC-32C.
type crcWriter struct {
	w   io.Writer
	crc uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, crcTable, p[:n])
	return n, err
}

// section is a Body read from a file: a live record's payload, copied by
// compaction.
type section struct{ r *io.SectionReader }

func (s section) Len() int64        { return s.r.Size() }
func (s section) Reader() io.Reader { return io.NewSectionReader(s.r, 0, s.r.Size()) }

// bytesBody is a Body held in memory.
type bytesBody []byte

func (b bytesBody) Len() int64        { return int64(len(b)) }
func (b bytesBody) Reader() io.Reader { return bytes.NewReader(b) }
