package journal

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/output"
)

func entry(id string, stage Stage) Entry {
	e := Entry{JobID: id, Stage: stage, Job: json.RawMessage(`{"id":"` + id + `"}`),
		ClaimedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), ExecutionID: "exec_" + id}
	if stage == Completing {
		e.Completion = json.RawMessage(`{"status":"completed","exitCode":0}`)
	}
	return e
}

func TestSaveLoadRemove(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "jobs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Entry{entry("b", Running), entry("a/../../x", Claimed), entry("c", Completing)} {
		if err := d.Save(e); err != nil {
			t.Fatal(err)
		}
	}
	// A later save replaces the entry.
	if err := d.Save(entry("b", Completing)); err != nil {
		t.Fatal(err)
	}
	got, bad, err := d.Load()
	if err != nil || len(bad) != 0 {
		t.Fatalf("load: %v, unreadable %v", err, bad)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.JobID+":"+string(e.Stage))
	}
	if strings.Join(ids, ",") != "a/../../x:claimed,b:completing,c:completing" {
		t.Fatalf("entries %v", ids)
	}
	files, _ := os.ReadDir(d.path)
	for _, f := range files {
		if info, _ := f.Info(); info.Mode().Perm() != 0o600 || strings.HasPrefix(f.Name(), ".tmp") {
			t.Errorf("file %s mode %v", f.Name(), info.Mode())
		}
	}
	if err := d.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("b"); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if got, _, _ := d.Load(); len(got) != 2 {
		t.Fatalf("%d entries after remove", len(got))
	}
}

// TestUnreadableEntries: entries of the earlier layout, a file per job,
// move into the log when it opens; a truncated or foreign one is reported
// with its job id and does not hide the others.
func TestUnreadableEntries(t *testing.T) {
	path := t.TempDir()
	d := &Dir{path: path}
	write := func(id, content string) {
		if err := os.WriteFile(d.file(id), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	good, _ := json.Marshal(entry("good", Running))
	good = append(good[:len(good)-1], `,"version":1}`...)
	write("good", string(good))
	write("cut", string(good[:len(good)/2]))
	write("old", `{"version":0,"jobId":"old","stage":"running","job":{}}`)
	write("other", `{"version":1,"jobId":"good","stage":"running","job":{}}`)
	write("nojob", `{"version":1,"jobId":"nojob","stage":"running"}`)
	// Not a journal file name: ignored.
	if err := os.WriteFile(filepath.Join(path, "notes.json"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, bad, err := d.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].JobID != "good" {
		t.Fatalf("readable %+v", got)
	}
	want := map[string]string{"cut": "corrupt", "old": "format", "other": "names job", "nojob": "no job"}
	if len(bad) != len(want) {
		t.Fatalf("unreadable %v", bad)
	}
	for _, u := range bad {
		if !strings.Contains(u.Err.Error(), want[u.JobID]) {
			t.Errorf("%s: %v, want %q", u.JobID, u.Err, want[u.JobID])
		}
	}
	files, _ := os.ReadDir(path)
	if len(files) != 2 { // the log and notes.json
		t.Errorf("files after the move: %v", files)
	}
}

func TestKeptOutput(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.LoadOutput("j"); ok {
		t.Fatal("output of a job that kept none")
	}
	k := output.Kept{Seq: 3}
	k.Streams[0] = output.KeptStream{Head: []byte("line 1\n"), Total: 7, Lines: 1}
	if err := d.Save(entry("j", Running)); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveOutput("j", k); err != nil {
		t.Fatal(err)
	}
	got, ok := d.LoadOutput("j")
	if !ok || string(got.Streams[0].Head) != "line 1\n" || got.Streams[0].Total != 7 || got.Seq != 3 {
		t.Fatalf("loaded %+v, %v", got, ok)
	}
	if entries, bad, _ := d.Load(); len(entries) != 1 || len(bad) != 0 {
		t.Fatalf("the output file is not an entry: %v %v", entries, bad)
	}
	if err := os.WriteFile(d.outputFile("j"), []byte(`{"streams":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.LoadOutput("j"); ok {
		t.Fatal("a torn output file was loaded")
	}
	if err := d.Remove("j"); err != nil {
		t.Fatal(err)
	}
	if left, err := Pending(d.path); err != nil || len(left) != 0 {
		t.Fatalf("left after remove: %v (%v)", left, err)
	}
	if files, _ := os.ReadDir(d.path); len(files) != 1 {
		t.Fatalf("files after remove: %v", files)
	}
}

// A write cut short by kill -9 leaves its temporary file: the next Open
// removes it, and the entries stay as they were.
func TestOpenRemovesUnfinishedWrites(t *testing.T) {
	path := t.TempDir()
	d, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Save(entry("job-1", Claimed)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, ".tmp-12345"), []byte(`{"jobId":"job-1","st`), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := os.ReadDir(path)
	if len(files) != 1 || strings.HasPrefix(files[0].Name(), ".tmp") {
		t.Fatalf("files after Open: %v", files)
	}
	if entries, bad, err := d.Load(); err != nil || len(entries) != 1 || len(bad) != 0 {
		t.Fatalf("Load = %v, %v, %v", entries, bad, err)
	}
}

// An entry's completion is spliced into its encoding as it is: the entry
// decodes as encoding/json's own encoding does, and a completion that is
// not JSON is refused rather than written.
func TestEncodeEntrySplicesTheCompletion(t *testing.T) {
	e := entry("c", Completing)
	e.Completion = json.RawMessage(`{"status":"failed","output":{"stdout":"` + strings.Repeat(`line \"x\"\n`, 1000) + `"}}`)
	data, body, tail, err := encodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	read, _ := io.ReadAll(body.Reader())
	got := bytes.Join([][]byte{data, read, tail}, nil)
	want, _ := json.Marshal(e)
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal(want, &b) != nil {
		t.Fatalf("not JSON: %.200s", got)
	}
	ga, _ := json.Marshal(a)
	wb, _ := json.Marshal(b)
	if string(ga) != string(wb) {
		t.Fatalf("decodes to something else than encoding/json's: %.300s", got)
	}
	e.Completion = json.RawMessage(`{"status":`)
	if _, _, _, err := encodeEntry(e); err == nil {
		t.Fatal("a truncated completion was encoded")
	}
	if got, body, _, err := encodeEntry(entry("r", Running)); err != nil || body != nil || strings.Contains(string(got), "completion") {
		t.Fatalf("an entry without a completion: %s %v", got, err)
	}
}

// The kept output is written as its bytes, read back exactly (any bytes,
// both streams, head and tail), and a file of the earlier format, JSON with
// base64, still loads; a file cut short or too long does not.
func TestKeptOutputFormats(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := output.Kept{Seq: 9}
	k.Streams[0] = output.KeptStream{Head: []byte("head\x00\xff\n"), Tail: []byte("tail\n"), Total: 1 << 20, Lines: 4}
	k.Streams[1] = output.KeptStream{Head: []byte("err\n"), Total: 4, Lines: 1}
	if err := d.SaveOutput("j", k); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(d.outputFile("j"))
	if err != nil || !strings.HasPrefix(string(data), keptMagic) {
		t.Fatalf("file %q %v", data, err)
	}
	same := func(got output.Kept) bool {
		for i, s := range got.Streams {
			w := k.Streams[i]
			if !bytes.Equal(s.Head, w.Head) || !bytes.Equal(s.Tail, w.Tail) || s.Total != w.Total || s.Lines != w.Lines {
				return false
			}
		}
		return got.Seq == k.Seq
	}
	if got, ok := d.LoadOutput("j"); !ok || !same(got) {
		t.Fatalf("loaded %+v, %v", got, ok)
	}
	legacy, _ := json.Marshal(k)
	if err := os.WriteFile(d.outputFile("j"), legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, ok := d.LoadOutput("j"); !ok || !same(got) {
		t.Fatalf("the earlier format loaded as %+v, %v", got, ok)
	}
	for name, bad := range map[string][]byte{"cut short": data[:len(data)-1], "too long": append(data, 'x'),
		"no header": []byte(keptMagic)} {
		if err := os.WriteFile(d.outputFile("j"), bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, ok := d.LoadOutput("j"); ok {
			t.Errorf("a file %s was loaded", name)
		}
	}
}
