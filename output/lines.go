package output

import (
	"bytes"
	"sync"

	"github.com/cronium/orchestrator/mask"
)

// LineSink takes a job's output line by line as it is printed (live
// lines for the UI). Line is called with the text of one complete line,
// masked, without its newline, in the order the lines were written to
// their stream. It must not block: it is called from the executor's
// write path.
type LineSink interface {
	Line(s Stream, text string)
}

// MaxLineBytes caps one line handed to a LineSink: a line that grows
// beyond it (a binary blob, a progress bar without newlines) is handed
// over cut at the cap as soon as it reaches it, and the rest of it, up to
// its newline, is left out.
const MaxLineBytes = 16 << 10

// lineTee splits writes into lines for a LineSink, holding a partial line
// per stream until its newline (or FlushLines). It has its own lock, so
// that the sink sees the lines of a stream in order without the log's
// lock being held while they are masked.
type lineTee struct {
	mu      sync.Mutex
	sink    LineSink
	partial [2][]byte
	cut     [2]bool // the line was handed over at the cap: skip to its newline
}

// SetLineSink tees every complete line written from now on to sink,
// masked with the log's masker (nil: none). Lines written before are not
// replayed: a resumed execution's output continues after what was kept,
// so nothing is sent twice.
func (l *Log) SetLineSink(sink LineSink) {
	l.tee.mu.Lock()
	defer l.tee.mu.Unlock()
	l.tee.sink = sink
}

// FlushLines hands the partial line of each stream (output that ended
// without a newline) to the sink: call it when the job's output ended.
// Calling it again is harmless.
func (l *Log) FlushLines() {
	t := &l.tee
	t.mu.Lock()
	defer t.mu.Unlock()
	for s := range t.partial {
		if len(t.partial[s]) > 0 && !t.cut[s] {
			t.emit(Stream(s), t.partial[s], false, l.masker.Load())
		}
		t.partial[s], t.cut[s] = t.partial[s][:0], false
	}
}

func (t *lineTee) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial, t.cut = [2][]byte{}, [2]bool{}
}

func (t *lineTee) write(s Stream, p []byte, m *mask.Masker) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sink == nil {
		return
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !t.cut[s] {
			room := MaxLineBytes - len(t.partial[s])
			t.partial[s] = append(t.partial[s], chunk[:min(room, len(chunk))]...)
			if len(chunk) > room { // beyond the cap: hand it over now
				t.emit(s, t.partial[s], true, m)
				t.cut[s] = true
			}
		}
		if i < 0 {
			return
		}
		if !t.cut[s] {
			t.emit(s, t.partial[s], false, m)
		}
		t.partial[s], t.cut[s] = t.partial[s][:0], false
		p = p[i+1:]
	}
}

func (t *lineTee) emit(s Stream, line []byte, cut bool, m *mask.Masker) {
	text := string(line)
	if m != nil {
		c := mask.Cut(0)
		if cut { // may stop inside a secret
			c = mask.CutEnd
		}
		text, _ = m.Mask(text, c)
	}
	t.sink.Line(s, text)
}
