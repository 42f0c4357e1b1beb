package output

import "bytes"

// Line is one recent line of output.
type Line struct {
	Stream Stream
	Text   string
}

// recentLines is a small ring of the latest complete lines; a partial
// line waits (bounded) for its newline. Its slots' bytes are reused, so a
// job printing a million lines allocates nothing here once the ring is
// full: a string per line was 35 MB of garbage for a 50 MB output, which
// the heap grew by before the collector caught up.
type recentLines struct {
	max     int
	ring    []recentLine // up to max; once full, the oldest is at next
	next    int
	partial [2][]byte
}

type recentLine struct {
	stream Stream
	text   []byte
}

const maxRecentLine = 4096

func (r *recentLines) write(s Stream, p []byte) {
	if r.max <= 0 {
		return
	}
	// Lines that max later lines of this write will push out are not
	// kept at all: a job printing fast writes hundreds of lines at once.
	if skip := bytes.Count(p, []byte{'\n'}) - r.max; skip > 0 {
		for ; skip > 0; skip-- {
			p = p[bytes.IndexByte(p, '\n')+1:]
		}
		r.partial[s] = r.partial[s][:0] // it began a skipped line
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if room := maxRecentLine - len(r.partial[s]); room > 0 {
				r.partial[s] = append(r.partial[s], p[:min(room, len(p))]...)
			}
			return
		}
		r.add(s, r.partial[s], p[:i])
		r.partial[s] = r.partial[s][:0]
		p = p[i+1:]
	}
}

// add keeps the line start+rest, cut at maxRecentLine, in the ring.
func (r *recentLines) add(s Stream, start, rest []byte) {
	slot := len(r.ring)
	if slot < r.max {
		r.ring = append(r.ring, recentLine{})
	} else {
		slot, r.next = r.next, (r.next+1)%r.max
	}
	text := append(r.ring[slot].text[:0], start...)
	text = append(text, rest[:min(len(rest), maxRecentLine-len(text))]...)
	r.ring[slot] = recentLine{stream: s, text: text}
}

func (r *recentLines) last(n int) []Line {
	n = max(0, min(n, len(r.ring)))
	out := make([]Line, 0, n)
	for i := len(r.ring) - n; i < len(r.ring); i++ {
		l := r.ring[(r.next+i)%len(r.ring)]
		out = append(out, Line{Stream: l.stream, Text: string(l.text)})
	}
	return out
}
