package journal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// holdFirstSync makes the log's first fsync wait until hold is closed,
// and counts them all.
func holdFirstSync(d *Dir) (*atomic.Int32, chan struct{}) {
	syncs, hold := &atomic.Int32{}, make(chan struct{})
	d.log.sync = func(f *os.File) error {
		if syncs.Add(1) == 1 {
			<-hold
		}
		return f.Sync()
	}
	return syncs, hold
}

// Saves made while a write is in progress wait for it and go out together
// in the next write: 200 saves, 2 fsyncs. The first write is held until
// the other 199 wait, so the count does not depend on scheduling.
func TestSavesShareASync(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	syncs, hold := holdFirstSync(d)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	save := func(i int) {
		defer wg.Done()
		errs <- d.Save(entry(fmt.Sprintf("job-%03d", i), Running))
	}
	wg.Add(1)
	go save(0)
	waitFor(t, func() bool { return syncs.Load() == 1 })
	for i := 1; i < 200; i++ {
		wg.Add(1)
		go save(i)
	}
	waitFor(t, func() bool {
		d.log.mu.Lock()
		defer d.log.mu.Unlock()
		return len(d.log.next.recs) == 199
	})
	close(hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := syncs.Load(); n != 2 {
		t.Errorf("%d fsyncs for 200 saves, want 2", n)
	}
	d.Close()
	d, err = Open(d.path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, bad, _ := d.Load(); len(got) != 200 || len(bad) != 0 {
		t.Fatalf("%d entries (%d unreadable) after reopening, want 200", len(got), len(bad))
	}
}

// A process killed inside a write leaves part of a record at the log's
// end: Open cuts it off, keeps every record before it, and later saves
// follow the intact ones.
func TestOpenRepairsTheLogsEnd(t *testing.T) {
	path := t.TempDir()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if err := d.Save(entry(id, Running)); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	log := filepath.Join(path, logName)
	intact, _ := os.ReadFile(log)
	torn, _ := appendRecord(nil, record{op: opEntry, jobID: "c", payload: []byte(`{"version":1}`)})
	for _, cut := range []int{3, headerSize, len(torn) - 1} {
		t.Run(fmt.Sprintf("cut at %d", cut), func(t *testing.T) {
			if err := os.WriteFile(log, append(bytes.Clone(intact), torn[:cut]...), 0o600); err != nil {
				t.Fatal(err)
			}
			d, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if data, _ := os.ReadFile(log); !bytes.Equal(data, intact) {
				t.Fatalf("log is %d bytes after Open, want the %d intact ones", len(data), len(intact))
			}
			if err := d.Save(entry("d", Claimed)); err != nil {
				t.Fatal(err)
			}
			d.Close()
			d, err = Open(path)
			if err != nil {
				t.Fatal(err)
			}
			got, bad, _ := d.Load()
			var ids []string
			for _, e := range got {
				ids = append(ids, e.JobID)
			}
			if strings.Join(ids, ",") != "a,b,d" || len(bad) != 0 {
				t.Fatalf("entries %v, unreadable %v", ids, bad)
			}
			if err := d.Remove("d"); err != nil {
				t.Fatal(err)
			}
			d.Close()
		})
	}
	// A flipped bit in the last record fails its checksum: cut off too.
	data := append(bytes.Clone(intact), torn...)
	data[len(data)-2] ^= 1
	if err := os.WriteFile(log, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if left, err := Pending(path); err != nil || strings.Join(left, ",") != "a,b" {
		t.Fatalf("pending %v (%v), want a,b", left, err)
	}
}

// A failed fsync fails the save and every later one: what the file holds
// is unknown until it is opened again, which finds the saves before it.
func TestFailedSyncFailsTheLog(t *testing.T) {
	path := t.TempDir()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Save(entry("a", Running)); err != nil {
		t.Fatal(err)
	}
	lost := errors.New("EIO")
	d.log.sync = func(*os.File) error { return lost }
	if err := d.Save(entry("b", Running)); !errors.Is(err, lost) {
		t.Fatalf("save with a failing fsync: %v", err)
	}
	d.log.sync = (*os.File).Sync
	if err := d.Save(entry("c", Running)); !errors.Is(err, lost) {
		t.Fatalf("save after a failed fsync: %v, want the failure again", err)
	}
	d.Close()
	d, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, _, _ := d.Load(); len(got) != 1 || got[0].JobID != "a" {
		t.Fatalf("after reopening: %+v, want a alone", got)
	}
	if err := d.Save(entry("c", Running)); err != nil {
		t.Fatalf("save after reopening: %v", err)
	}
}

// Replacing entries grows the log; past compactMin and compactRatio times
// the live records it is rewritten with only those, and still reads back
// the same.
func TestCompaction(t *testing.T) {
	path := t.TempDir()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	big := entry("big", Running)
	big.Job = []byte(`{"id":"big","script":"` + strings.Repeat("x", 64<<10) + `"}`)
	if err := d.SaveHelpers("big", []byte(`{"token":"t"}`)); err != nil {
		t.Fatal(err)
	}
	if err := d.Save(entry("small", Claimed)); err != nil {
		t.Fatal(err)
	}
	maxSize := int64(0)
	for i := range 200 { // 200 × 64 KiB: 12.8 MiB written
		big.Attempt = i + 1
		if err := d.Save(big); err != nil {
			t.Fatal(err)
		}
		info, _ := os.Stat(filepath.Join(path, logName))
		maxSize = max(maxSize, info.Size())
	}
	if maxSize > compactMin+(256<<10) {
		t.Errorf("the log grew to %d bytes, want compaction near %d", maxSize, compactMin)
	}
	d.Close()
	d, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, bad, _ := d.Load()
	if len(got) != 2 || len(bad) != 0 || got[0].JobID != "big" || got[0].Attempt != 200 || got[1].JobID != "small" {
		t.Fatalf("after compaction: %d entries, %v unreadable, first %s attempt %d", len(got), bad, got[0].JobID, got[0].Attempt)
	}
	if h, ok := d.LoadHelpers("big"); !ok || string(h) != `{"token":"t"}` {
		t.Fatalf("helpers after compaction %q, %v", h, ok)
	}
	if _, err := os.Stat(filepath.Join(path, compactName)); err == nil {
		t.Error("the compaction's file is left")
	}
}

// An upgrade from the layout of a file per job: entries and helpers move
// into the log (their jobs resume), the files go, kept output stays with
// its entry, and kept output without one is removed.
func TestOpenMovesTheEarlierLayout(t *testing.T) {
	path := t.TempDir()
	old := &Dir{path: path}
	e := []byte(`{"version":1,"jobId":"a","stage":"running","job":{"id":"a"},"executionId":"exec_a"}`)
	for name, data := range map[string][]byte{
		old.file("a"):                  e,
		old.helpersFile("a"):           []byte(`{"token":"kept"}`),
		old.outputFile("a"):            []byte(`{"seq":1}`),
		old.outputFile("gone"):         []byte(`{"seq":1}`),
		filepath.Join(path, ".tmp-12"): []byte(`{"jobId":"a"`),
	} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, bad, _ := d.Load()
	if len(got) != 1 || got[0].ExecutionID != "exec_a" || len(bad) != 0 {
		t.Fatalf("entries %+v, unreadable %v", got, bad)
	}
	if h, ok := d.LoadHelpers("a"); !ok || string(h) != `{"token":"kept"}` {
		t.Fatalf("helpers %q, %v", h, ok)
	}
	if _, ok := d.LoadOutput("a"); !ok {
		t.Error("the kept output of a was removed")
	}
	var names []string
	files, _ := os.ReadDir(path)
	for _, f := range files {
		names = append(names, f.Name())
	}
	if want := filepath.Base(old.outputFile("a")) + " " + logName; strings.Join(names, " ") != want {
		t.Errorf("files %v, want %s", names, want)
	}
}

// waitFor waits for what the test observes; the minute only ends a hang.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within a minute")
}

// genBody is a completion of n lines, made as it is read.
type genBody struct{ lines int }

func (g genBody) text() string { return `{"status":"completed","output":{"stdout":"` }

func (g genBody) line(i int) string { return fmt.Sprintf("line %07d\\n", i) }

func (g genBody) Len() int64 {
	return int64(len(g.text()) + g.lines*len(g.line(0)) + len(`"}}`))
}

func (g genBody) Reader() io.Reader {
	rs := []io.Reader{strings.NewReader(g.text())}
	for i := range g.lines {
		rs = append(rs, strings.NewReader(g.line(i)))
	}
	return io.MultiReader(append(rs, strings.NewReader(`"}}`))...)
}

func (g genBody) bytes() []byte {
	b, _ := io.ReadAll(g.Reader())
	return b
}

// A completion saved as a Body is written in its place among the batch's
// records, with their CRCs right: after reopening, every entry reads back
// as saved, and so after compaction copies the body from the old file. The
// first record is written alone; the next batch holds, in this order, a
// body, a record, a body, a body, a small body read into its record, and
// a body: bodies first, last, side by side and between records. A body cut
// short by a crash is dropped at reopen; a body that reads short of its length
// fails its batch's saves only, and the log goes on.
func TestBodiesAreWrittenInPlace(t *testing.T) {
	path := t.TempDir()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	syncs, hold := holdFirstSync(d)
	// Past inlineBody (13 bytes a line), but "s", which is read into its
	// record.
	bodies := map[string]genBody{"a": {lines: 20000}, "c": {lines: 6000}, "d": {lines: 5500}, "s": {lines: 3}, "e": {lines: 5200}}
	saves := []Entry{entry("first", Running), entry("a", Completing), entry("b", Running), entry("c", Completing),
		entry("d", Completing), entry("s", Completing), entry("e", Completing)}
	var wg sync.WaitGroup
	errs := make(chan error, len(saves))
	for i, e := range saves {
		if g, ok := bodies[e.JobID]; ok {
			e.CompletionBody = g
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs <- d.Save(e) }()
		// One at a time into the batch, so their order is this one; the
		// first is written alone and holds the rest until all wait.
		waitFor(t, func() bool {
			if i == 0 {
				return syncs.Load() == 1
			}
			d.log.mu.Lock()
			defer d.log.mu.Unlock()
			return len(d.log.next.recs) == i
		})
	}
	close(hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string, want int) {
		t.Helper()
		got, bad, err := d.Load()
		if err != nil || len(got) != want || len(bad) != 0 {
			t.Fatalf("%s: %d entries, %v unreadable, %v", when, len(got), bad, err)
		}
		for _, e := range got {
			if g, ok := bodies[e.JobID]; ok && !bytes.Equal(e.Completion, g.bytes()) {
				t.Fatalf("%s: %s's completion is %d bytes, not the %d saved", when, e.JobID, len(e.Completion), g.Len())
			} else if !ok && e.Completion != nil {
				t.Fatalf("%s: %s has a completion", when, e.JobID)
			}
		}
	}
	reopen := func() {
		d.Close()
		if d, err = Open(path); err != nil {
			t.Fatal(err)
		}
	}
	reopen()
	check("reopened", len(saves))
	if _, err := d.log.compact(); err != nil {
		t.Fatal(err)
	}
	check("compacted", len(saves))
	reopen()
	check("compacted and reopened", len(saves))

	short := entry("short", Completing)
	short.CompletionBody = lyingBody{genBody{lines: 6000}}
	if err := d.Save(short); err == nil {
		t.Fatal("a body shorter than its length was saved")
	}
	for _, lines := range []int{3, 6000} { // read into its record, or written as read
		long := entry("long", Completing)
		long.CompletionBody = longerBody{genBody{lines: lines}}
		if err := d.Save(long); err == nil {
			t.Fatalf("a body of %d lines longer than its length was saved", lines)
		}
	}
	small := entry("short", Completing)
	small.CompletionBody = lyingBody{genBody{lines: 3}}
	if err := d.Save(small); err == nil {
		t.Fatal("a small body shorter than its length was saved")
	}
	if err := d.Save(entry("after", Running)); err != nil {
		t.Fatalf("a save after a short body: %v", err)
	}
	check("after a short body", len(saves)+1)
	reopen()
	check("after a short body, reopened", len(saves)+1)

	// A crash inside a body's write: the record is cut off at reopen.
	torn := entry("torn", Completing)
	bodies["torn"] = genBody{lines: 8000}
	torn.CompletionBody = bodies["torn"]
	if err := d.Save(torn); err != nil {
		t.Fatal(err)
	}
	d.Close()
	log := filepath.Join(path, logName)
	info, _ := os.Stat(log)
	if err := os.Truncate(log, info.Size()-bodies["torn"].Len()/2); err != nil {
		t.Fatal(err)
	}
	if d, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	check("cut inside a body", len(saves)+1)
}

// lyingBody claims a byte more than it reads.
type lyingBody struct{ genBody }

func (l lyingBody) Len() int64 { return l.genBody.Len() + 1 }

// longerBody claims a byte less than it reads.
type longerBody struct{ genBody }

func (l longerBody) Len() int64 { return l.genBody.Len() - 1 }
