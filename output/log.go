// Package output keeps one job's output while it runs: bounded per stream
// (the head and the tail, with a marker for what was left out), counted to
// the byte so a resumed execution continues exactly where the last one
// stopped, and with a short tail of recent lines for the status page.
//
// A Log outlives the actors that use it: a crashed job actor or log actor
// loses nothing, because output never waits in a mailbox.
package output

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
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
}

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

// Snapshot is the kept output of both streams at one moment.
type Snapshot struct {
	Stdout string
	Stderr string
	Stats  Stats
}

// Snapshot renders both streams, each as head + marker + tail once it
// outgrew the cap.
func (l *Log) Snapshot() Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Snapshot{
		Stdout: l.streams[Stdout].render(),
		Stderr: l.streams[Stderr].render(),
		Stats:  l.statsLocked(),
	}
}

// Recent returns up to n of the latest lines of both streams, oldest first.
func (l *Log) Recent(n int) []Line {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recent.last(n)
}

// buffer keeps the first half of the cap and a rolling last half.
type buffer struct {
	headCap, tailCap int
	head, tail       []byte
	total, lines     int64
}

func newBuffer(maxBytes int64) *buffer {
	half := int(maxBytes / 2)
	return &buffer{headCap: half, tailCap: int(maxBytes) - half}
}

func (b *buffer) write(p []byte) {
	b.total += int64(len(p))
	b.lines += int64(bytes.Count(p, []byte{'\n'}))
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

func (b *buffer) keptTail() []byte {
	if len(b.tail) > b.tailCap {
		return b.tail[len(b.tail)-b.tailCap:]
	}
	return b.tail
}

func (b *buffer) dropped() int64 {
	return b.total - int64(len(b.head)) - int64(len(b.keptTail()))
}

func (b *buffer) render() string {
	tail := b.keptTail()
	dropped := b.dropped()
	if dropped == 0 {
		return string(b.head) + string(tail)
	}
	// Start the tail on a line boundary when one is near, so the first
	// kept line is whole.
	if i := bytes.IndexByte(tail, '\n'); i >= 0 && i < 4096 && i+1 < len(tail) {
		dropped += int64(i + 1)
		tail = tail[i+1:]
	}
	marker := fmt.Sprintf("\n[cronium: %d bytes of output omitted here; the first and last %d KiB are kept]\n",
		dropped, b.tailCap/1024)
	return string(b.head) + marker + string(tail)
}

// Line is one recent line of output.
type Line struct {
	Stream Stream
	Text   string
}

// recentLines is a small ring of the latest complete lines; a partial
// line waits (bounded) for its newline.
type recentLines struct {
	max     int
	lines   []Line
	partial [2][]byte
}

const maxRecentLine = 4096

func (r *recentLines) write(s Stream, p []byte) {
	if r.max <= 0 {
		return
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if room := maxRecentLine - len(r.partial[s]); room > 0 {
				r.partial[s] = append(r.partial[s], p[:min(room, len(p))]...)
			}
			return
		}
		line := append(r.partial[s], p[:i]...)
		if len(line) > maxRecentLine {
			line = line[:maxRecentLine]
		}
		r.lines = append(r.lines, Line{Stream: s, Text: string(line)})
		r.partial[s] = r.partial[s][:0]
		p = p[i+1:]
	}
	if len(r.lines) > 2*r.max {
		r.lines = append([]Line(nil), r.lines[len(r.lines)-r.max:]...)
	}
}

func (r *recentLines) last(n int) []Line {
	if n > len(r.lines) {
		n = len(r.lines)
	}
	return append([]Line(nil), r.lines[len(r.lines)-n:]...)
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
