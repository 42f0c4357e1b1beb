package docker

import (
	"bytes"
	"strings"
	"testing"

	"github.com/docker/docker/pkg/stdcopy"
)

// logStream encodes frames the way the logs API sends them; a frame on
// stderr is prefixed with "!".
func logStream(t *testing.T, frames ...string) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	out, errw := stdcopy.NewStdWriter(&b, stdcopy.Stdout), stdcopy.NewStdWriter(&b, stdcopy.Stderr)
	for _, f := range frames {
		w := out
		if strings.HasPrefix(f, "!") {
			w, f = errw, f[1:]
		}
		if _, err := w.Write([]byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	return &b
}

func TestReplayRepair(t *testing.T) {
	chunk := strings.Repeat("x", logChunk)
	tests := []struct {
		name   string
		frames []string
		want   string // stdout
	}{
		{"short lines untouched", []string{"a\n", "b\n", "tail"}, "a\nb\ntail"},
		{"long line's last piece gets its newline", []string{chunk, "end", "next\n"}, chunk + "end\nnext\n"},
		{"empty last piece", []string{chunk, "next\n"}, chunk + "\nnext\n"},
		{"several pieces", []string{chunk, chunk, "z", "!err\n", "n\n"}, chunk + chunk + "z\nn\n"},
		{"long line last in the log", []string{"a\n", chunk, "end"}, "a\n" + chunk + "end\n"},
		{"16 KiB line with newline is whole", []string{strings.Repeat("y", logChunk-1) + "\n", "b\n"},
			strings.Repeat("y", logChunk-1) + "\nb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errw bytes.Buffer
			r := newReplay(&out, &errw, 0, 0, true)
			if err := r.copyFrom(logStream(t, tt.frames...)); err != nil {
				t.Fatal(err)
			}
			if err := r.end(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("stdout = %q…, want %q… (%d vs %d bytes)", truncate(out.Bytes(), 20), truncate([]byte(tt.want), 20), out.Len(), len(tt.want))
			}
		})
	}
}

func TestReplayWithoutRepairIsVerbatim(t *testing.T) {
	chunk := strings.Repeat("x", logChunk)
	var out, errw bytes.Buffer
	r := newReplay(&out, &errw, 0, 0, false)
	if err := r.copyFrom(logStream(t, chunk, "end\n", "!e")); err != nil {
		t.Fatal(err)
	}
	_ = r.end()
	if out.String() != chunk+"end\n" || errw.String() != "e" {
		t.Errorf("stdout %d bytes, stderr %q", out.Len(), errw.String())
	}
}

// TestReplaySkipAndSecondPass: offsets skip delivered bytes, and a second
// pass over the full log writes only what the first did not.
func TestReplaySkipAndSecondPass(t *testing.T) {
	chunk := strings.Repeat("x", logChunk)
	var out, errw bytes.Buffer
	first := newReplay(&out, &errw, 3, 1, true)
	if err := first.copyFrom(logStream(t, "abcdef\n", "!xyz\n", chunk, "tail")); err != nil {
		t.Fatal(err)
	}
	second := first.again()
	if err := second.copyFrom(logStream(t, "abcdef\n", "!xyz\n", chunk, "tail", "more\n", "!last\n")); err != nil {
		t.Fatal(err)
	}
	if err := second.end(); err != nil {
		t.Fatal(err)
	}
	if want := "def\n" + chunk + "tail\nmore\n"; out.String() != want {
		t.Errorf("stdout = %q…, want %q…", truncate(out.Bytes(), 30), truncate([]byte(want), 30))
	}
	if errw.String() != "yz\nlast\n" {
		t.Errorf("stderr = %q", errw.String())
	}
}

func TestReplayDaemonError(t *testing.T) {
	var b bytes.Buffer
	_, _ = stdcopy.NewStdWriter(&b, stdcopy.Systemerr).Write([]byte("Error grabbing logs: boom\n"))
	err := newReplay(&bytes.Buffer{}, &bytes.Buffer{}, 0, 0, true).copyFrom(&b)
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("err = %v", err)
	}
}
