package backend

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestSanitizeText(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"ascii", "hello\nworld\t!", "hello\nworld\t!"},
		{"unicode intact", "héllo wörld ✓ 日本語 🚀 \uFFFD", "héllo wörld ✓ 日本語 🚀 \uFFFD"},
		{"nul", "a\x00b\x00", "a\uFFFDb\uFFFD"},
		{"invalid byte", "a\xffb", "a\uFFFDb"},
		{"truncated rune", "ok \xe6\x97", "ok \uFFFD\uFFFD"},
		{"surrogate half", "\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"mixed", "日\x00本\xc3", "日\uFFFD本\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SanitizeText(tt.in)
			if got != tt.want || !utf8.ValidString(got) {
				t.Fatalf("SanitizeText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSanitizeJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"clean kept byte for byte", `{"a": 1.50, "b":"<x>"}`, `{"a": 1.50, "b":"<x>"}`},
		{"escaped nul", `{"a":"x\u0000y","n":12345678901234567890}`, `{"a":"x\uFFFDy","n":12345678901234567890}`},
		{"invalid utf8", "[\"a\xffb\"]", `["a\uFFFDb"]`},
		{"nul in key", `{"k\u0000":true}`, `{"k\uFFFD":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sanitizeJSON(json.RawMessage(tt.in))
			var gotV, wantV any
			if string(got) == tt.want {
				return
			}
			_ = json.Unmarshal(got, &gotV)
			_ = json.Unmarshal([]byte(tt.want), &wantV)
			if b1, _ := json.Marshal(gotV); string(b1) != mustJSON(wantV) || !utf8.Valid(got) {
				t.Fatalf("sanitizeJSON(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
