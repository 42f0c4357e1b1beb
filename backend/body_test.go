package backend

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// checkPayload: the payload reads as marshalNoEscape encodes v, byte for
// byte, at once and one byte at a time, twice (each attempt reads it
// anew), and its size is its length.
func checkPayload(t *testing.T, v any, texts ...*string) *payload {
	t.Helper()
	want, err := marshalNoEscape(v)
	if err != nil {
		t.Fatal(err)
	}
	p, err := encodePayload(v, texts...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		got, err := io.ReadAll(p.reader())
		if err != nil {
			t.Fatal(err)
		}
		slow, err := io.ReadAll(iotest.OneByteReader(p.reader()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || !bytes.Equal(slow, want) {
			t.Fatalf("reading %d: body differs from encoding/json's at byte %d of %d", i, firstDiff(got, want), len(want))
		}
	}
	if p.size != int64(len(want)) {
		t.Fatalf("size %d, body %d bytes", p.size, len(want))
	}
	return p
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// big repeats s to at least bigText bytes, so that it is escaped as the
// body is read.
func big(s string) string {
	if s == "" {
		s = "x"
	}
	return strings.Repeat(s, bigText/len(s)+1)
}

func TestPayloadLargeTexts(t *testing.T) {
	for _, tc := range []struct{ name, stdout, stderr string }{
		{"plain lines", big("line 0001 of the output\n"), "small"},
		{"escapes", big("tab\there \"quoted\" back\\slash \r\n\b\f\x00\x01\x1f\x7f <html>&"), big("err\n")},
		{"unicode", big("héllo 世界 🙂 \u2028 \u2029 "), ""},
		{"invalid UTF-8", big("a\xffb\xc3(c\xe2\x82"), big("\xed\xa0\x80")},
		{"small only", "out", "err"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			comp := Completion{Status: StatusCompleted, Output: CompletionOutput{Stdout: tc.stdout, Stderr: tc.stderr},
				Metrics: []byte(`{"a":1}`), Timestamp: time.Unix(1, 0).UTC()}
			p := checkPayload(t, &comp, &comp.Output.Stdout, &comp.Output.Stderr)
			if comp.Output.Stdout != tc.stdout || comp.Output.Stderr != tc.stderr {
				t.Fatal("the texts were not restored")
			}
			wantTexts := 0
			for _, s := range []string{tc.stdout, tc.stderr} {
				if len(s) >= bigText {
					wantTexts++
				}
			}
			if len(p.texts) != wantTexts {
				t.Fatalf("%d texts escaped as read, want %d", len(p.texts), wantTexts)
			}
		})
	}
}

// An update's texts are pointers, nil when unset; a text that appears
// twice in the body (the same string in both fields) is cut at each place.
func TestPayloadUpdateTexts(t *testing.T) {
	out := big("the same\n")
	same := out
	u := ExecutionUpdate{Status: StatusRunning, Output: &out, Error: &same}
	checkPayload(t, &u, u.Output, u.Error)
	u.Error = nil
	checkPayload(t, &u, u.Output, u.Error)
	// One field named twice is one text, and it is restored.
	u.Error = u.Output
	checkPayload(t, &u, u.Output, u.Error)
	if *u.Output != out {
		t.Fatal("the text named twice was not restored")
	}
}

func FuzzPayload(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\x00\x1f\x7f", "\u2028\u2029", "\xff\xfe", "é世🙂", "<>&", "\xe2\x80"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		comp := Completion{Status: StatusFailed, Output: CompletionOutput{Stdout: big(a), Stderr: b}}
		checkPayload(t, &comp, &comp.Output.Stdout, &comp.Output.Stderr)
	})
}
