package output

import (
	"bytes"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var markerRE = regexp.MustCompile(`\n\[cronium: (\d+) bytes of output omitted here; the first and last \d+ KiB are kept\]\n`)

// write is one Write of a chunk to a stream.
type write struct {
	s Stream
	p []byte
}

// chunk splits data into writes as cuts says: each cut byte sends the
// next (cut>>1) bytes to stdout or stderr (its low bit); what is left goes
// to stdout.
func chunk(data, cuts []byte) []write {
	var ws []write
	for _, c := range cuts {
		n := min(int(c>>1), len(data))
		ws = append(ws, write{Stream(c & 1), data[:n]})
		data = data[n:]
	}
	return append(ws, write{Stdout, data})
}

// streams is what each stream received, in order.
func streams(ws []write) [2][]byte {
	var out [2][]byte
	for _, w := range ws {
		out[w.s] = append(out[w.s], w.p...)
	}
	return out
}

// completeLines are the lines ended by a newline, in the order their
// newlines arrived, each cut to maxRecentLine bytes as the log keeps them.
func completeLines(ws []write) []Line {
	var lines []Line
	var partial [2][]byte
	for _, w := range ws {
		for _, b := range w.p {
			if b != '\n' {
				partial[w.s] = append(partial[w.s], b)
				continue
			}
			text := partial[w.s][:min(len(partial[w.s]), maxRecentLine)]
			lines = append(lines, Line{Stream: w.s, Text: string(text)})
			partial[w.s] = nil
		}
	}
	return lines
}

func feed(l *Log, ws []write) {
	for _, w := range ws {
		_, _ = l.Writer(w.s).Write(w.p)
	}
}

// FuzzLogChunking writes one byte stream per stdout and stderr to a Log in
// arbitrary chunks and interleavings. Counts are exact, the kept text is
// the head, an exact omission marker and the tail, it depends on the bytes
// only (not on the chunking), stays within the cap plus the marker, and
// the recent lines are the stream's last complete lines.
func FuzzLogChunking(f *testing.F) {
	lines := []byte(strings.Repeat("line 0001\nline 0002 is longer\n\nno newline at the end", 20))
	f.Add([]byte("hello\nworld\n"), []byte{7, 2, 9}, uint16(1024), uint8(10), int16(3))
	f.Add(lines, []byte{0, 1, 255, 254, 3, 4, 30, 31}, uint16(64), uint8(3), int16(5))
	f.Add(lines, []byte{20, 21, 20, 21, 20, 21}, uint16(4096), uint8(1), int16(200))
	f.Add([]byte("\n\n\n\n\n\n\n"), []byte{2, 2, 2, 2, 2, 2}, uint16(1), uint8(2), int16(-1))
	f.Add(bytes.Repeat([]byte("x"), 5000), []byte{255, 255, 128}, uint16(100), uint8(4), int16(4))
	f.Add(append(bytes.Repeat([]byte("y"), 5000), '\n'), []byte{201, 7}, uint16(0), uint8(0), int16(0))
	f.Fuzz(func(t *testing.T, data, cuts []byte, capacity uint16, recent uint8, n int16) {
		max := int64(capacity)
		keep := int(recent % 32)
		ws := chunk(data, cuts)
		want := streams(ws)

		chunked := New(max, keep, nil)
		feed(chunked, ws)
		whole := New(max, keep, nil)
		feed(whole, []write{{Stdout, want[Stdout]}, {Stderr, want[Stderr]}})
		bytewise := New(max, keep, nil)
		for s, b := range want {
			for i := range b {
				_, _ = bytewise.Writer(Stream(s)).Write(b[i : i+1])
			}
		}

		snap := chunked.Snapshot()
		for name, other := range map[string]*Log{"one write per stream": whole, "a byte per write": bytewise} {
			o := other.Snapshot()
			o.Stats.Seq = snap.Stats.Seq
			if !reflect.DeepEqual(snap, o) {
				t.Fatalf("chunked and %s differ:\n%+v\n%+v", name, snap, o)
			}
		}
		checkKept(t, max, want[Stdout], snap.Stdout)
		checkKept(t, max, want[Stderr], snap.Stderr)
		st := snap.Stats
		if st.StdoutBytes != int64(len(want[Stdout])) || st.StderrBytes != int64(len(want[Stderr])) ||
			st.Lines != int64(bytes.Count(data, []byte{'\n'})) {
			t.Fatalf("stats %+v for %d+%d bytes", st, len(want[Stdout]), len(want[Stderr]))
		}

		// Recent lines: the last complete ones, never more than kept, the
		// same however the output was chunked.
		all := completeLines(ws)
		got := chunked.Recent(int(n))
		wantN := min(max0(int(n)), keep, len(all))
		if !equalLines(got, all[len(all)-wantN:]) {
			t.Fatalf("Recent(%d) with %d kept = %q, want the last %d of %q", n, keep, got, wantN, all)
		}
		for _, k := range []int{0, keep / 2, keep} {
			if g := chunked.Recent(k); !equalLines(g, all[len(all)-min(k, len(all)):]) {
				t.Fatalf("Recent(%d) = %q", k, g)
			}
		}

		// A log restored from what another kept carries on as that one.
		half := len(ws) / 2
		first := New(max, keep, nil)
		feed(first, ws[:half])
		restored := New(max, keep, nil)
		restored.Restore(first.Kept())
		feed(restored, ws[half:])
		r := restored.Snapshot()
		r.Stats.Seq = snap.Stats.Seq
		if !reflect.DeepEqual(r, snap) {
			t.Fatalf("restored log differs:\n%+v\n%+v", r, snap)
		}

		// A snapshot and a Kept view the log's bytes: later writes leave
		// them as they were.
		mid, kept := first.Snapshot(), first.Kept()
		midCopy := mid
		midCopy.Stdout, midCopy.Stderr = strings.Clone(mid.Stdout), strings.Clone(mid.Stderr)
		keptCopy := kept
		for i, ks := range kept.Streams {
			keptCopy.Streams[i].Head, keptCopy.Streams[i].Tail = bytes.Clone(ks.Head), bytes.Clone(ks.Tail)
		}
		feed(first, ws[half:])
		if !reflect.DeepEqual(mid, midCopy) || !reflect.DeepEqual(kept, keptCopy) {
			t.Fatalf("later writes changed an earlier snapshot or Kept:\n%+v\n%+v", mid, midCopy)
		}

		// Reset starts afresh.
		chunked.Reset()
		if s := chunked.Snapshot(); s.Stdout != "" || s.Stderr != "" || s.Stats.Bytes() != 0 || len(chunked.Recent(keep)) != 0 {
			t.Fatalf("after Reset: %+v", s)
		}
	})
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

func equalLines(a, b []Line) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// checkKept: under the cap a stream is kept whole; over it, as its head,
// a marker naming exactly how many bytes are left out, and its tail.
func checkKept(t *testing.T, max int64, stream []byte, kept string) {
	t.Helper()
	if int64(len(stream)) <= max {
		if kept != string(stream) {
			t.Fatalf("under the cap: kept %q, want %q", kept, stream)
		}
		return
	}
	loc := markerRE.FindStringSubmatchIndex(kept)
	if loc == nil {
		t.Fatalf("%d bytes over a cap of %d without a marker: %q", len(stream), max, kept)
	}
	head, tail := kept[:loc[0]], kept[loc[1]:]
	omitted, err := strconv.Atoi(kept[loc[2]:loc[3]])
	if err != nil || int64(len(head)+len(tail)) > max {
		t.Fatalf("kept %d+%d bytes of a cap of %d", len(head), len(tail), max)
	}
	if !bytes.HasPrefix(stream, []byte(head)) || len(head) != int(max/2) || !bytes.HasSuffix(stream, []byte(tail)) ||
		len(head)+omitted+len(tail) != len(stream) {
		t.Fatalf("head %d + omitted %d + tail %d bytes != %d", len(head), omitted, len(tail), len(stream))
	}
}

// Found by FuzzLogChunking's seeds: a write that ended mid-line skipped
// the trim of the recent lines, so a job whose output chunks rarely end
// on a newline kept every line it printed; Recent gave more lines than the
// log keeps (how many depended on the chunking) and panicked for n < 0.
func TestRecentLinesStayBounded(t *testing.T) {
	l := New(1<<20, 3, nil)
	w := l.Writer(Stdout)
	for i := range 1000 {
		_, _ = w.Write([]byte("line " + strconv.Itoa(i) + "\npart"))
	}
	if n := len(l.recent.ring); n > 3 {
		t.Fatalf("the ring holds %d lines; the log keeps 3", n)
	}

	got := l.Recent(100)
	want := []Line{{Stdout, "partline 997"}, {Stdout, "partline 998"}, {Stdout, "partline 999"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Recent(100) = %q, want %q", got, want)
	}
	if got := l.Recent(-1); len(got) != 0 {
		t.Fatalf("Recent(-1) = %q", got)
	}
	line := []byte("another line\n")
	if allocs := testing.AllocsPerRun(100, func() { l.recent.write(Stdout, line) }); allocs > 0 {
		t.Fatalf("%v allocations per line once the ring is full", allocs)
	}
}
