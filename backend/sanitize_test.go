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

// sanitizeJSON's output is compared byte for byte: a clean document must
// come back untouched, and a repaired one keeps every number as written
// (a detour through float64 would round the 20-digit one).
func TestSanitizeJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"clean kept byte for byte", `{"a": 1.50, "b":"<x>"}`, `{"a": 1.50, "b":"<x>"}`},
		{"escaped nul", `{"n":12345678901234567890,"a":"x\u0000y","f":1.50}`, `{"a":"x` + "\uFFFD" + `y","f":1.50,"n":12345678901234567890}`},
		{"invalid utf8", "[\"a\xffb\",\"<&>\"]", `["a` + "\uFFFD" + `b","<&>"]`},
		{"nul in key", `{"k\u0000":true}`, `{"k` + "\uFFFD" + `":true}`},
		{"not JSON kept as is", "{\"a\":\"\xff", "{\"a\":\"\xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sanitizeJSON(json.RawMessage(tt.in)); string(got) != tt.want {
				t.Fatalf("sanitizeJSON(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
