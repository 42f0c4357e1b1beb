package output

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/mask"
)

const pw = "s3cr3t-Pa55w0rd"

// noPiece fails when text shows 4 bytes or more of pw in a row.
func noPiece(t *testing.T, where, text string) {
	t.Helper()
	for i := 0; i+mask.MinLen <= len(pw); i++ {
		if piece := pw[i : i+mask.MinLen]; strings.Contains(text, piece) {
			t.Fatalf("%s shows %q of the secret: %q", where, piece, text)
		}
	}
}

// Masking happens when output is read; what the log keeps and counts is
// the raw bytes, so a resumed execution's offsets stay exact.
func TestSnapshotMasksWhatTheLogKeepsRaw(t *testing.T) {
	l := New(1024, 10, nil)
	l.SetMasker(mask.New(pw))
	raw := "user=admin password=" + pw + "\n"
	for i := range len(raw) { // one byte per write, as a stream may deliver it
		l.Writer(Stdout).Write([]byte{raw[i]})
		noPiece(t, fmt.Sprintf("snapshot after %d bytes", i+1), l.Snapshot().Stdout)
	}
	fmt.Fprint(l.Writer(Stderr), "auth failed for "+pw[:7])
	fmt.Fprint(l.Writer(Stderr), pw[7:]+"\n")
	s := l.Snapshot()
	if s.Stdout != "user=admin password=[MASKED]\n" || s.Stderr != "auth failed for [MASKED]\n" || s.Masked != 2 {
		t.Fatalf("snapshot %q / %q, %d masked", s.Stdout, s.Stderr, s.Masked)
	}
	if s.Stats.StdoutBytes != int64(len(raw)) || s.Stats.StderrBytes != int64(len("auth failed for "+pw+"\n")) {
		t.Fatalf("counts changed by masking: %+v", s.Stats)
	}
	if k := l.Kept(); string(k.Streams[Stdout].Head) != raw {
		t.Fatalf("kept %q, want the raw bytes", k.Streams[Stdout].Head)
	}
	if r := l.Recent(10); len(r) != 2 || r[0].Text != "user=admin password=[MASKED]" || r[1].Text != "auth failed for [MASKED]" {
		t.Fatalf("recent %+v", r)
	}
}

// Beyond the cap, a secret may straddle the end of the head or the start
// of the tail: neither side of the marker shows a piece of it.
func TestSnapshotMasksAcrossTheCap(t *testing.T) {
	const max = 64 // head and tail of 32 bytes
	for shift := range 40 {
		l := New(max, 0, nil)
		l.SetMasker(mask.New(pw))
		var b bytes.Buffer
		b.WriteString(strings.Repeat("a", shift) + pw + strings.Repeat("b", 200) + pw + strings.Repeat("c", shift))
		l.Writer(Stdout).Write(b.Bytes()) // no newline: the tail is not moved to a line start
		s := l.Snapshot()
		if !strings.Contains(s.Stdout, "bytes of output omitted") {
			t.Fatalf("shift %d: no marker in %q", shift, s.Stdout)
		}
		noPiece(t, fmt.Sprintf("shift %d", shift), s.Stdout)
		if s.Stats.StdoutBytes != int64(b.Len()) {
			t.Fatalf("shift %d: %d bytes counted, want %d", shift, s.Stats.StdoutBytes, b.Len())
		}
	}
}

// A private key printed line by line is masked line by line, in the
// snapshot and in the recent lines alike; a masker set late masks what
// was written before it, and a reset keeps it.
func TestRecentLinesAndMultiLineSecrets(t *testing.T) {
	const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQyNTUxOQAAACDx\n-----END OPENSSH PRIVATE KEY-----\n"
	l := New(1024, 10, nil)
	for line := range strings.SplitSeq(strings.TrimSuffix(key, "\n"), "\n") {
		fmt.Fprintln(l.Writer(Stdout), "> "+line)
	}
	if r := l.Recent(1); r[0].Text != "> -----END OPENSSH PRIVATE KEY-----" {
		t.Fatalf("without a masker: %q", r[0].Text)
	}
	l.SetMasker(mask.New(key))
	want := "> [MASKED]\n> [MASKED]\n> [MASKED]\n> [MASKED]\n"
	if s := l.Snapshot(); s.Stdout != want || s.Masked != 4 {
		t.Fatalf("snapshot %q, %d masked", s.Stdout, s.Masked)
	}
	for _, r := range l.Recent(10) {
		if r.Text != "> [MASKED]" {
			t.Fatalf("recent line %q", r.Text)
		}
	}
	l.Reset()
	fmt.Fprintln(l.Writer(Stderr), "QyNTUxOQAAACDx")
	if s := l.Snapshot(); s.Stderr != "[MASKED]\n" {
		t.Fatalf("after reset: %q", s.Stderr)
	}
	if got := l.Masker().Text("reason: QyNTUxOQAAACDx"); got != "reason: [MASKED]" {
		t.Fatalf("Masker().Text: %q", got)
	}
}

// A line longer than the recent lines keep is cut; the cut may fall
// inside a secret.
func TestTruncatedRecentLineIsMaskedAtItsCut(t *testing.T) {
	l := New(1<<16, 2, nil)
	l.SetMasker(mask.New(pw))
	fmt.Fprintln(l.Writer(Stdout), strings.Repeat("x", maxRecentLine-6)+pw)
	r := l.Recent(1)
	if len(r) != 1 || !strings.HasSuffix(r[0].Text, mask.Replacement) {
		t.Fatalf("recent %q", r[0].Text[maxRecentLine-20:])
	}
	noPiece(t, "the truncated line", r[0].Text)
}
