package journal

import (
	"bufio"
	"encoding/binary"
	"hash/crc32"
	"io"
	"slices"
)

// A record is framed
//
//	uint32 length of body | uint32 CRC-32C of body | body
//	body: op (1 byte) | uvarint length of job id | job id | payload

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// record is one change, decoded.
type record struct {
	op      op
	jobID   string
	payload []byte
	// body and then tail continue the payload of a record being written:
	// a large part (a completion and its output) is read into the log as
	// it is written, never copied whole into memory.
	body Body
	tail []byte
}

// Body is a payload part too large to copy: the log reads it while it
// writes it, once.
type Body interface {
	Len() int64
	Reader() io.Reader // exactly Len bytes
}

// payloadLen is the length of r's payload, body and tail included.
func (r record) payloadLen() int64 {
	n := int64(len(r.payload) + len(r.tail))
	if r.body != nil {
		n += r.body.Len()
	}
	return n
}

// span locates a live record in the file: its payload, and the whole
// record's size (what compaction would keep of it).
type span struct {
	off  int64 // of the payload
	n    int64 // payload bytes
	size int64 // the whole record
}

// appendRecord frames r at the end of buf. A record with a body is framed
// around it: its CRC is completed once the body is written (see
// batch.writeAt), and pending says how.
func appendRecord(buf []byte, r record) (_ []byte, pending *pendingBody) {
	var id [binary.MaxVarintLen64]byte
	idn := binary.PutUvarint(id[:], uint64(len(r.jobID)))
	bodyLen := int64(1+idn+len(r.jobID)) + r.payloadLen()
	start := len(buf)
	buf = slices.Grow(buf, headerSize+1+idn+len(r.jobID)+len(r.payload)+len(r.tail))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(bodyLen))
	buf = binary.LittleEndian.AppendUint32(buf, 0) // the CRC, below
	buf = append(buf, byte(r.op))
	buf = append(buf, id[:idn]...)
	buf = append(buf, r.jobID...)
	buf = append(buf, r.payload...)
	crc := crc32.Checksum(buf[start+headerSize:], crcTable)
	if r.body != nil {
		pending = &pendingBody{body: r.body, at: len(buf), crcAt: start + 4, crc: crc, tail: len(r.tail)}
		buf = append(buf, r.tail...)
		return buf, pending
	}
	crc = crc32.Update(crc, crcTable, r.tail)
	buf = append(buf, r.tail...)
	binary.LittleEndian.PutUint32(buf[start+4:], crc)
	return buf, nil
}

// pendingBody is a record's body, to be written between buf[:at] and
// buf[at:] of its batch; the record's CRC, at crcAt in buf, is crc so far
// and goes on over the body and then the tail bytes after at.
type pendingBody struct {
	body  Body
	at    int
	crcAt int
	crc   uint32
	tail  int
}

// scan reads records from r until its end or the first record that is not
// whole and intact, and returns how many bytes the intact records take.
// An fsync'd append-only file can only be torn at its end (a write the
// process or machine died in), so what follows a bad record is that write.
//
// total is the reader's length: a header claiming more is torn, and is not
// allocated for.
func scan(r io.Reader, total int64, each func(rec record, payloadOff, size int64)) (int64, error) {
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
		if n < 2 || n > maxBody || int64(n) > total-off-headerSize {
			return off, nil
		}
		if cap(body) < int(n) {
			body = make([]byte, n)
		}
		body = body[:n]
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

// recordSize is the body length of r, framed.
func recordSize(r record) int64 {
	var id [binary.MaxVarintLen64]byte
	return int64(1+binary.PutUvarint(id[:], uint64(len(r.jobID)))+len(r.jobID)) + r.payloadLen()
}
