// Package output keeps one job's output while it runs: bounded per stream
// (the head and the tail, with a marker for what was left out), counted to
// the byte so a resumed execution continues exactly where the last one
// stopped, and with a short tail of recent lines for the status page.
//
// A Log outlives the actors that use it: a crashed job actor or log actor
// loses nothing, because output never waits in a mailbox.
//
// The Log keeps the bytes as they were written; secrets are masked (see
// SetMasker) in what is read out of it, never in what it keeps or counts.
package output

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cronium/orchestrator/mask"
)

// Stream is stdout or stderr.
type Stream int

const (
	Stdout Stream = iota
	Stderr
)

func (s Stream) String() string {
	if s == Stderr {
		return "stderr"
	}
	return "stdout"
}

// Log is safe for concurrent use. Writers never block on anything but a
// short critical section.
type Log struct {
	mu      sync.Mutex
	streams [2]*buffer
	seq     uint64
	recent  recentLines

	// notify is called after a write when the previous nudge has been
	// taken (see TakeNudge), so a reader gets one message per burst.
	notify func()
	nudged atomic.Bool

	masker atomic.Pointer[mask.Masker]

	tee lineTee // live lines (SetLineSink)

	// Once the output has ended (End), Snapshot keeps what it rendered:
	// the final update and the completion each need all of it, and a
	// large output's second rendering is that much more memory at once.
	ended      bool
	last       *Snapshot
	lastMasker *mask.Masker
	attempt    uint64 // bumped by Reset: a rendering begun before is not kept
}

// New returns a Log that keeps up to maxBytes per stream for Snapshot and
// calls notify (if not nil) when output arrives.
func New(maxBytes int64, recentLineCount int, notify func()) *Log {
	l := &Log{notify: notify, recent: recentLines{max: recentLineCount}}
	for i := range l.streams {
		l.streams[i] = newBuffer(maxBytes)
	}
	return l
}

// Reset empties the log for a new attempt of the job: a retried job's
// output starts afresh, as its new execution record does.
func (l *Log) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, b := range l.streams {
		l.streams[i] = newBuffer(int64(b.headCap + b.tailCap))
	}
	l.recent = recentLines{max: l.recent.max}
	l.tee.reset()
	l.ended, l.last, l.lastMasker = false, nil, nil
	l.attempt++
}

// End says that the job's output has ended: from now on Snapshot renders
// it once. (A write after End, which should not come, is rendered anew.)
func (l *Log) End() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ended = true
}

// SetMasker sets the masker of what leaves the log (Snapshot, Recent,
// Masker); nil masks nothing. It applies to output already written too:
// the log keeps raw bytes and masks them whenever they are read.
func (l *Log) SetMasker(m *mask.Masker) { l.masker.Store(m) }

// Masker is the log's masker, for texts that accompany its output (a
// reason, a server's own output); nil when none is set.
func (l *Log) Masker() *mask.Masker { return l.masker.Load() }

// Writer returns the writer for one stream.
func (l *Log) Writer(s Stream) io.Writer { return writer{l: l, s: s} }

type writer struct {
	l *Log
	s Stream
}

func (w writer) Write(p []byte) (int, error) {
	w.l.append(w.s, p)
	return len(p), nil
}

func (l *Log) append(s Stream, p []byte) {
	if len(p) == 0 {
		return
	}
	l.mu.Lock()
	l.streams[s].write(p)
	l.seq++
	l.recent.write(s, p)
	l.mu.Unlock()
	l.tee.write(s, p, l.masker.Load())
	if l.notify != nil && l.nudged.CompareAndSwap(false, true) {
		l.notify()
	}
}

// TakeNudge re-arms notify; call it when handling the notification, before
// reading the log, so that no write goes unannounced.
func (l *Log) TakeNudge() { l.nudged.Store(false) }

// Stats are cumulative counters.
type Stats struct {
	Seq          uint64 // bumps on every write
	StdoutBytes  int64
	StderrBytes  int64
	Lines        int64 // newline-terminated lines, both streams
	DroppedBytes int64 // left out of Snapshot by the size cap, both streams
}

// Bytes is the total of both streams.
func (s Stats) Bytes() int64 { return s.StdoutBytes + s.StderrBytes }

// Held is what the log holds of both streams, the size cap applied: the
// size of a snapshot, before masking and the cap's markers.
func (s Stats) Held() int64 { return s.Bytes() - s.DroppedBytes }

func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.statsLocked()
}

func (l *Log) statsLocked() Stats {
	out, errb := l.streams[Stdout], l.streams[Stderr]
	return Stats{
		Seq:          l.seq,
		StdoutBytes:  out.total,
		StderrBytes:  errb.total,
		Lines:        out.lines + errb.lines,
		DroppedBytes: out.dropped() + errb.dropped(),
	}
}

// Snapshot is the kept output of both streams at one moment, masked.
type Snapshot struct {
	Stdout string
	Stderr string
	Stats  Stats // of the raw bytes: masking changes no count
	// Masked is how many secrets Stdout and Stderr had replaced.
	Masked int
}

// Snapshot renders both streams, each as head + marker + tail once it
// outgrew the cap, and masks them. Each stream is masked as one text, so
// a secret written in pieces is masked whole; its end is treated as a cut
// (the output of a running job may stop inside a secret), and so are both
// sides of the omission marker.
func (l *Log) Snapshot() Snapshot {
	m := l.masker.Load()
	l.mu.Lock()
	if l.last != nil && l.last.Stats.Seq == l.seq && l.lastMasker == m {
		s := *l.last
		l.mu.Unlock()
		return s
	}
	out, errs := l.streams[Stdout].render(), l.streams[Stderr].render()
	s := Snapshot{Stats: l.statsLocked()}
	ended, attempt := l.ended, l.attempt
	l.mu.Unlock()
	var n1, n2 int
	s.Stdout, n1 = out.mask(m)
	s.Stderr, n2 = errs.mask(m)
	s.Masked = n1 + n2
	if ended {
		l.mu.Lock()
		if l.ended && l.seq == s.Stats.Seq && l.attempt == attempt {
			kept := s
			l.last, l.lastMasker = &kept, m
		}
		l.mu.Unlock()
	}
	return s
}

// Recent returns up to n of the latest lines of both streams, oldest
// first, each masked on its own.
func (l *Log) Recent(n int) []Line {
	l.mu.Lock()
	lines := l.recent.last(n)
	l.mu.Unlock()
	if m := l.masker.Load(); m != nil {
		for i, line := range lines {
			var cut mask.Cut
			if len(line.Text) >= maxRecentLine { // truncated: may stop inside a secret
				cut = mask.CutEnd
			}
			lines[i].Text, _ = m.Mask(line.Text, cut)
		}
	}
	return lines
}

// buffer keeps a stream's output: all of it while it fits the cap, then
// the first half of the cap and a rolling last half.
//
// The bytes of head and tail below their lengths are never written again
// (appends go past the length, a trim makes a new array, Reset and
// Restore make new buffers), so a snapshot views them instead of copying
// them: a job printing 50 MB would otherwise hold it twice, or three
// times while a render and an update body are alive.
type buffer struct {
	headCap, tailCap int
	// split says the cap was passed: head is the first headCap bytes and
	// tail rolls. Until then head holds all of the output, so that a
	// snapshot of it is one view.
	split        bool
	head, tail   []byte
	total, lines int64
}

func newBuffer(maxBytes int64) *buffer {
	half := int(maxBytes / 2)
	return &buffer{headCap: half, tailCap: int(maxBytes) - half}
}

func (b *buffer) write(p []byte) {
	b.total += int64(len(p))
	b.lines += int64(bytes.Count(p, []byte{'\n'}))
	if !b.split {
		if limit := b.headCap + b.tailCap; len(b.head)+len(p) <= limit {
			b.head = appendCapped(b.head, p, limit)
			return
		}
		b.splitHead()
	}
	if room := b.headCap - len(b.head); room > 0 {
		n := min(room, len(p))
		b.head = append(b.head, p[:n]...)
		p = p[n:]
	}
	if len(p) == 0 {
		return
	}
	b.tail = append(b.tail, p...)
	// Trim rarely (at twice the cap) so appends stay amortised O(1).
	if len(b.tail) > 2*b.tailCap {
		b.tail = append([]byte(nil), b.tail[len(b.tail)-b.tailCap:]...)
	}
}

// splitHead starts rolling: what head holds past headCap begins the tail.
// Both are copied out of head's array (up to twice headCap), so that the
// array is freed once no snapshot views it, instead of living as long as
// the head.
func (b *buffer) splitHead() {
	b.split = true
	if len(b.head) > b.headCap {
		b.tail = bytes.Clone(b.head[b.headCap:])
		b.head = bytes.Clone(b.head[:b.headCap])
	}
}

// appendCapped appends p to s, growing s by doubling but never past limit
// (len(s)+len(p) <= limit): append's own growth of a large slice, by a
// quarter, copies a 50 MB output about ten times over, and its last step
// would reserve memory past the cap that is never used.
func appendCapped(s, p []byte, limit int) []byte {
	if need := len(s) + len(p); need > cap(s) {
		grown := make([]byte, len(s), min(max(2*cap(s), need, 4096), limit))
		copy(grown, s)
		s = grown
	}
	return append(s, p...)
}

func (b *buffer) keptTail() []byte {
	if len(b.tail) > b.tailCap {
		return b.tail[len(b.tail)-b.tailCap:]
	}
	return b.tail
}

func (b *buffer) dropped() int64 {
	return b.total - int64(len(b.head)) - int64(len(b.keptTail()))
}

// view is p as a string without a copy. Only for bytes that are never
// written again (see buffer).
func view(p []byte) string { return unsafe.String(unsafe.SliceData(p), len(p)) }

// rendered is one stream as shown: the head, and once output was left
// out, the omission marker and the tail. head and tail are views of the
// buffer (see buffer), masked outside the log's lock.
type rendered struct {
	head, marker, tail string
	tailCut            bool // the tail starts where bytes were dropped, maybe inside a secret
}

func (b *buffer) render() rendered {
	tail := b.keptTail()
	dropped := b.dropped()
	if dropped <= 0 {
		if len(tail) == 0 { // all of the output, in head while it fits
			return rendered{head: view(b.head)}
		}
		// Only from a Kept whose total is short of what it holds.
		return rendered{head: string(b.head) + string(tail)}
	}
	// Start the tail on a line boundary when one is near, so the first
	// kept line is whole.
	cut := true
	if i := bytes.IndexByte(tail, '\n'); i >= 0 && i < 4096 && i+1 < len(tail) {
		dropped += int64(i + 1)
		tail = tail[i+1:]
		cut = false
	}
	marker := fmt.Sprintf("\n[cronium: %d bytes of output omitted here; the first and last %d KiB are kept]\n",
		dropped, b.tailCap/1024)
	return rendered{head: view(b.head), marker: marker, tail: view(tail), tailCut: cut}
}

// mask masks the head and tail each as a text cut where the omission
// marker stands and at the end; the marker itself is ours.
func (r rendered) mask(m *mask.Masker) (string, int) {
	if r.marker == "" {
		return m.Mask(r.head, mask.CutEnd)
	}
	head, n1 := m.Mask(r.head, mask.CutEnd)
	cut := mask.CutEnd
	if r.tailCut {
		cut |= mask.CutStart
	}
	tail, n2 := m.Mask(r.tail, cut)
	return head + r.marker + tail, n1 + n2
}

// AppendNote adds a marked last line to an output stream, e.g. why a job
// failed; the backend shows stderr as the job's error text.
func AppendNote(s, note string) string {
	if note == "" {
		return s
	}
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s + "[cronium] " + note + "\n"
}
