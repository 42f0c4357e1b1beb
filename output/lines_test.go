package output

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cronium/orchestrator/mask"
)

type sinkLine struct {
	s    Stream
	text string
}

type recordingSink struct {
	mu    sync.Mutex
	lines []sinkLine
}

func (r *recordingSink) Line(s Stream, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, sinkLine{s, text})
}

func (r *recordingSink) got() []sinkLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

// Lines reach the sink whole, in order per stream, however the writes
// cut them; a secret cut across writes is masked, and so is the part of
// one that a cap cut off at the end of a line.
func TestLineSink(t *testing.T) {
	const pw = "hunter22-secret"
	long := strings.Repeat("x", MaxLineBytes-4) + pw // the cap cuts the secret
	tests := []struct {
		name   string
		writes []string // stdout, except those starting with "E:" (stderr)
		flush  bool
		want   []sinkLine
	}{
		{"whole lines", []string{"a\nb\n"}, false, []sinkLine{{Stdout, "a"}, {Stdout, "b"}}},
		{"byte by byte", strings.Split("one\ntwo\n", ""), false, []sinkLine{{Stdout, "one"}, {Stdout, "two"}}},
		{"partial held until its newline", []string{"par", "tial", "\nrest"}, false, []sinkLine{{Stdout, "partial"}}},
		{"partial flushed at the end", []string{"a\nlast"}, true, []sinkLine{{Stdout, "a"}, {Stdout, "last"}}},
		{"streams apart", []string{"o1", "E:e1\n", "\n", "E:e2\n"}, false,
			[]sinkLine{{Stderr, "e1"}, {Stdout, "o1"}, {Stderr, "e2"}}},
		{"empty lines", []string{"\n\n"}, false, []sinkLine{{Stdout, ""}, {Stdout, ""}}},
		{"secret split across writes", []string{"pw=hun", "ter22-se", "cret ok\n"}, false,
			[]sinkLine{{Stdout, "pw=[MASKED] ok"}}},
		{"CR kept as printed", []string{"dos\r\n"}, false, []sinkLine{{Stdout, "dos\r"}}},
		{"line cut at the cap, secret piece masked, rest skipped", []string{long[:100], long[100:] + "tail", "\nnext\n"}, false,
			[]sinkLine{{Stdout, strings.Repeat("x", MaxLineBytes-4) + "[MASKED]"}, {Stdout, "next"}}},
		{"line of exactly the cap is whole", []string{strings.Repeat("y", MaxLineBytes), "\n"}, false,
			[]sinkLine{{Stdout, strings.Repeat("y", MaxLineBytes)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(1<<20, 10, nil)
			l.SetMasker(mask.New(pw))
			sink := &recordingSink{}
			l.SetLineSink(sink)
			for _, w := range tt.writes {
				if e, ok := strings.CutPrefix(w, "E:"); ok {
					l.Writer(Stderr).Write([]byte(e))
				} else {
					l.Writer(Stdout).Write([]byte(w))
				}
			}
			if tt.flush {
				l.FlushLines()
				l.FlushLines() // twice is once
			}
			if got := sink.got(); !slices.Equal(got, tt.want) {
				t.Errorf("lines %q\nwant %q", short(got), short(tt.want))
			}
		})
	}
}

func short(ls []sinkLine) []string {
	var out []string
	for _, l := range ls {
		t := l.text
		if len(t) > 40 {
			t = t[:10] + "..." + t[len(t)-20:]
		}
		out = append(out, l.s.String()+":"+t)
	}
	return out
}

// A reset (a retried job's next attempt) forgets the partial line; a log
// without a sink splits nothing.
func TestLineSinkResetAndNone(t *testing.T) {
	l := New(1<<20, 10, nil)
	l.Writer(Stdout).Write([]byte("before the sink\n"))
	sink := &recordingSink{}
	l.SetLineSink(sink)
	l.Writer(Stdout).Write([]byte("attempt 1 partial"))
	l.Reset()
	l.Writer(Stdout).Write([]byte("attempt 2\n"))
	l.FlushLines()
	if got, want := sink.got(), []sinkLine{{Stdout, "attempt 2"}}; !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q", short(got), short(want))
	}
}
