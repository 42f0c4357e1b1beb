package ssh

import (
	"bytes"
	"errors"
	"io"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/executors"
)

func TestFrameReaderSkipsLoginNoise(t *testing.T) {
	t.Parallel()
	const sync = "cronium-sync-0123"
	for _, tc := range []struct {
		name, in string
		want     byte
		err      error
	}{
		{"none", sync + "\nS /tmp/x\n", 'S', nil},
		{"lines", "Welcome!\nS fake frame\n" + sync + "\nD\n", 'D', nil},
		{"no final newline", "noise\npartial" + sync + "\nA /tmp/x 0\n", 'A', nil},
		{"within the bound", strings.Repeat(strings.Repeat("n", 999)+"\n", 60) + strings.Repeat("p", 4000) + sync + "\nD\n", 'D', nil},
		{"endless", strings.Repeat("noise line\n", 10000) + sync + "\nD\n", 0, ErrRemote},
		{"endless line", strings.Repeat("n", 70000) + sync + "\nD\n", 0, ErrRemote},
		{"no sync", "This account is currently not available.\n", 0, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := newFrameReader(strings.NewReader(tc.in), sync).next()
			if !errors.Is(err, tc.err) || f.kind != tc.want {
				t.Fatalf("frame %q, err %v; want %q, %v", f.kind, err, tc.want, tc.err)
			}
		})
	}
	// Noise is skipped once: after the sync line, frames are strict.
	fr := newFrameReader(strings.NewReader(sync+"\nH\nnoise\n"), sync)
	if f, err := fr.next(); err != nil || f.kind != 'H' {
		t.Fatalf("first: %q %v", f.kind, err)
	}
	if _, err := fr.next(); !errors.Is(err, ErrRemote) {
		t.Fatalf("noise after the sync line: err = %v, want ErrRemote", err)
	}
}

func TestFramePayloadShort(t *testing.T) {
	t.Parallel()
	fr := newFrameReader(strings.NewReader("O 10\nabc"), "")
	f, err := fr.next()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	n, err := fr.payload(&b, f.n)
	if n != 3 || b.String() != "abc" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("n=%d got=%q err=%v", n, b.String(), err)
	}
}

func TestSpoolTag(t *testing.T) {
	t.Parallel()
	safe := regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)
	long := strings.Repeat("x", 300)
	ids := [][2]string{
		{"42", "exec-1"}, {"42", "exec-2"}, {"43", "exec-1"}, {"", "exec-1"},
		{"job/with space*", "e"}, {"job_with_space_", "e"}, {long, long}, {long + "y", long},
		{"a.b", "c"}, {"a", "b.c"}, {"j", "x'; rm -rf / #"},
	}
	seen := map[string][2]string{}
	for _, id := range ids {
		tag := spoolTag(id[0], id[1])
		if !safe.MatchString(tag) || len(tag) > 40+1+64 {
			t.Errorf("spoolTag(%q, %q) = %q: not plain or too long", id[0], id[1], tag)
		}
		if prev, dup := seen[tag]; dup {
			t.Errorf("spoolTag(%q) = spoolTag(%q) = %q", id, prev, tag)
		}
		seen[tag] = id
		if ok, _ := path.Match(jobSpools(id[0]), tag); !ok {
			t.Errorf("jobSpools(%q) = %q does not match its execution's tag %q", id[0], jobSpools(id[0]), tag)
		}
	}
	if tag := spoolTag("42", "exec-1"); tag != "42.exec-1" {
		t.Errorf("plain ids are kept readable: %q", tag)
	}
	if ok, _ := path.Match(jobSpools("4"), spoolTag("42", "e")); ok {
		t.Error("jobSpools of job 4 matches job 42")
	}
}

func TestPrefixer(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	sink := &multiSink{out: executors.Output{Stdout: &out, Stderr: &errOut}, mp: &multiProgress{}}
	p := &prefixer{sink: sink, prefix: "[a] ", pending: []byte("carried ")}
	for _, w := range []string{"over\nfirst", " half\nsecond\nthird\n", "", "tail"} {
		if n, err := p.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	p.flush()
	if want := "[a] carried over\n[a] first half\n[a] second\n[a] third\n[a] tail\n"; out.String() != want {
		t.Fatalf("out = %q, want %q", out.String(), want)
	}
	if sink.mp.combinedOut != int64(out.Len()) || errOut.Len() != 0 {
		t.Fatalf("counted %d of %d bytes; stderr %q", sink.mp.combinedOut, out.Len(), errOut.String())
	}
	// A line beyond maxLine is broken rather than buffered without bound.
	out.Reset()
	big := bytes.Repeat([]byte("x"), maxLine+1)
	_, _ = p.Write(big)
	if out.Len() != len("[a] ")+len(big)+1 || len(p.pending) != 0 {
		t.Fatalf("long line: wrote %d bytes, %d pending", out.Len(), len(p.pending))
	}
}
