package output

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/cronium/orchestrator/mask"
	"github.com/cronium/orchestrator/secret"
)

func TestSnapshotKeepsEverythingUnderTheCap(t *testing.T) {
	l := New(1024, 10, nil)
	fmt.Fprint(l.Writer(Stdout), "hello\n")
	fmt.Fprint(l.Writer(Stderr), "oops\n")
	fmt.Fprint(l.Writer(Stdout), "world\n")
	s := l.Snapshot()
	if s.Stdout != "hello\nworld\n" || s.Stderr != "oops\n" {
		t.Fatalf("got %q / %q", s.Stdout, s.Stderr)
	}
	if s.Stats.StdoutBytes != 12 || s.Stats.StderrBytes != 5 || s.Stats.Lines != 3 || s.Stats.DroppedBytes != 0 {
		t.Fatalf("stats %+v", s.Stats)
	}
}

func TestSnapshotKeepsHeadAndTailWithMarker(t *testing.T) {
	const max = 8192
	l := New(max, 0, nil)
	var all bytes.Buffer
	for i := 0; i < 5000; i++ {
		line := fmt.Sprintf("line %05d\n", i)
		all.WriteString(line)
		l.Writer(Stdout).Write([]byte(line))
	}
	s := l.Snapshot()
	if !strings.HasPrefix(s.Stdout, "line 00000\n") {
		t.Fatalf("head lost: %q", s.Stdout[:40])
	}
	if !strings.HasSuffix(s.Stdout, "line 04999\n") {
		t.Fatalf("tail lost")
	}
	if !strings.Contains(s.Stdout, "bytes of output omitted") {
		t.Fatal("no truncation marker")
	}
	// The kept tail starts on a whole line.
	after := s.Stdout[strings.Index(s.Stdout, "]\n")+2:]
	if !strings.HasPrefix(after, "line ") {
		t.Fatalf("tail starts mid-line: %q", after[:20])
	}
	if got, want := s.Stats.StdoutBytes, int64(all.Len()); got != want {
		t.Fatalf("total %d, want %d", got, want)
	}
	if len(s.Stdout) > max+200 {
		t.Fatalf("snapshot of %d bytes exceeds the cap %d", len(s.Stdout), max)
	}
	if s.Stats.DroppedBytes <= 0 || s.Stats.DroppedBytes >= int64(all.Len()) {
		t.Fatalf("dropped %d", s.Stats.DroppedBytes)
	}
}

func TestNudgeOncePerBurst(t *testing.T) {
	var mu sync.Mutex
	nudges := 0
	l := New(1024, 0, func() { mu.Lock(); nudges++; mu.Unlock() })
	for i := 0; i < 100; i++ {
		l.Writer(Stdout).Write([]byte("x"))
	}
	if nudges != 1 {
		t.Fatalf("want 1 nudge before it is taken, got %d", nudges)
	}
	l.TakeNudge()
	l.Writer(Stderr).Write([]byte("y"))
	if nudges != 2 {
		t.Fatalf("want a second nudge after TakeNudge, got %d", nudges)
	}
}

func TestRecentLines(t *testing.T) {
	l := New(1024, 3, nil)
	w := l.Writer(Stdout)
	w.Write([]byte("a\nb\nc"))
	l.Writer(Stderr).Write([]byte("err\n"))
	w.Write([]byte("d\ne\n"))
	got := l.Recent(3)
	want := []Line{{Stderr, "err"}, {Stdout, "cd"}, {Stdout, "e"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

func TestConcurrentWritersCountEveryByte(t *testing.T) {
	l := New(1<<20, 10, func() {})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				l.Writer(Stream(g % 2)).Write([]byte("0123456789\n"))
			}
		}(g)
	}
	wg.Wait()
	st := l.Stats()
	if st.Bytes() != 8*1000*11 || st.Lines != 8000 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAppendNote(t *testing.T) {
	if got := AppendNote("boom", "exited with code 3"); got != "boom\n[cronium] exited with code 3\n" {
		t.Fatalf("%q", got)
	}
	if got := AppendNote("x\n", ""); got != "x\n" {
		t.Fatalf("%q", got)
	}
}

func TestReset(t *testing.T) {
	l := New(64, 4, nil)
	fmt.Fprint(l.Writer(Stdout), "first attempt\n")
	fmt.Fprint(l.Writer(Stderr), "boom\n")
	l.Reset()
	fmt.Fprint(l.Writer(Stdout), "second\n")
	s := l.Snapshot()
	if s.Stdout != "second\n" || s.Stderr != "" || s.Stats.Lines != 1 || s.Stats.StdoutBytes != 7 {
		t.Fatalf("after reset: %+v", s)
	}
	if r := l.Recent(4); len(r) != 1 || r[0].Text != "second" {
		t.Fatalf("recent %+v", r)
	}
}

// TestKeptRestore: a log restored from what another kept goes on exactly
// as the other would have, under the cap and beyond it.
func TestKeptRestore(t *testing.T) {
	for _, first := range []int{10, 100, 1000} {
		a := New(256, 4, nil)
		for i := range first {
			fmt.Fprintf(a.Writer(Stdout), "line %d\n", i)
		}
		fmt.Fprint(a.Writer(Stderr), "err\n")
		b := New(256, 4, nil)
		b.Restore(a.Kept())
		for _, l := range []*Log{a, b} {
			for i := range 20 {
				fmt.Fprintf(l.Writer(Stdout), "more %d\n", i)
			}
		}
		sa, sb := a.Snapshot(), b.Snapshot()
		if sa.Stdout != sb.Stdout || sa.Stderr != sb.Stderr || sa.Stats != sb.Stats {
			t.Fatalf("after %d lines: restored log differs:\n%q\n%q\n%+v\n%+v", first, sa.Stdout, sb.Stdout, sa.Stats, sb.Stats)
		}
	}
}

// TestSnapshotsViewTheLog: a snapshot and a Kept are views of the log's
// bytes, not copies, and no later write, past the cap or not, changes one
// taken before it.
func TestSnapshotsViewTheLog(t *testing.T) {
	l := New(64, 4, nil)
	fmt.Fprint(l.Writer(Stdout), "under the cap\n")
	if s, k := l.Snapshot(), l.Kept(); unsafe.StringData(s.Stdout) != unsafe.SliceData(k.Streams[Stdout].Head) {
		t.Fatal("the snapshot is a copy of the log's bytes")
	}
	type taken struct {
		snap, snapCopy Snapshot
		kept, keptCopy Kept
	}
	var all []taken
	for i := range 200 { // far past the cap: the tail rolls and is trimmed many times
		fmt.Fprintf(l.Writer(Stream(i%2)), "%s%d\n", strings.Repeat("w", i%9), i)
		tk := taken{snap: l.Snapshot(), kept: l.Kept()}
		tk.snapCopy = tk.snap
		tk.snapCopy.Stdout, tk.snapCopy.Stderr = strings.Clone(tk.snap.Stdout), strings.Clone(tk.snap.Stderr)
		tk.keptCopy = tk.kept
		for s, ks := range tk.kept.Streams {
			tk.keptCopy.Streams[s].Head, tk.keptCopy.Streams[s].Tail = bytes.Clone(ks.Head), bytes.Clone(ks.Tail)
		}
		all = append(all, tk)
	}
	for i, tk := range all {
		if !reflect.DeepEqual(tk.snap, tk.snapCopy) || !reflect.DeepEqual(tk.kept, tk.keptCopy) {
			t.Fatalf("after write %d: a later write changed it:\n%+v\nwas\n%+v", i, tk.snap, tk.snapCopy)
		}
	}
}

// Once the output ended, a snapshot is rendered once and shared; a write,
// a new masker or a reset after that renders anew.
func TestSnapshotAfterEnd(t *testing.T) {
	l := New(1<<20, 10, nil)
	fmt.Fprint(l.Writer(Stdout), "token s3cr3t-value-42\n")
	l.End()
	a, b := l.Snapshot(), l.Snapshot()
	if a.Stdout != "token s3cr3t-value-42\n" || unsafe.StringData(a.Stdout) != unsafe.StringData(b.Stdout) {
		t.Fatalf("not shared: %q %q", a.Stdout, b.Stdout)
	}
	fmt.Fprint(l.Writer(Stdout), "late\n")
	if s := l.Snapshot(); s.Stdout != "token s3cr3t-value-42\nlate\n" {
		t.Fatalf("after a late write: %q", s.Stdout)
	}
	l.SetMasker(mask.New(secret.Value("s3cr3t-value-42")))
	if s := l.Snapshot(); !strings.Contains(s.Stdout, mask.Replacement) || strings.Contains(s.Stdout, "s3cr3t-value-42") {
		t.Fatalf("after a new masker: %q", s.Stdout)
	}
	l.Reset()
	l.End()
	if s := l.Snapshot(); s.Stdout != "" {
		t.Fatalf("after a reset: %q", s.Stdout)
	}
}
