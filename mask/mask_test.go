package mask

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/secret"
)

func TestMask(t *testing.T) {
	const key = "-----BEGIN OPENSSH PRIVATE KEY-----\r\nb3BlbnNzaC1rZXktdjEAAAAA\n\nQyNTUxOQAAACDx\n-----END OPENSSH PRIVATE KEY-----\n"
	tests := []struct {
		name      string
		secrets   []secret.Value
		text      string
		cut       Cut
		want      string
		wantCount int
	}{
		{name: "nothing to mask", secrets: nil, text: "pw hunter22", want: "pw hunter22"},
		{name: "one occurrence", secrets: []secret.Value{"hunter22"}, text: "pw hunter22.", want: "pw [MASKED].", wantCount: 1},
		{name: "every occurrence", secrets: []secret.Value{"hunter22"}, text: "hunter22 hunter22\nhunter22",
			want: "[MASKED] [MASKED]\n[MASKED]", wantCount: 3},
		{name: "several secrets", secrets: []secret.Value{"hunter22", "tok-ABCD"}, text: "a=hunter22 b=tok-ABCD",
			want: "a=[MASKED] b=[MASKED]", wantCount: 2},
		{name: "shorter than 4 bytes never masked", secrets: []secret.Value{"abc", "x", ""}, text: "abc x abc",
			want: "abc x abc"},
		{name: "4 bytes masked", secrets: []secret.Value{"abcd"}, text: "abcd", want: "[MASKED]", wantCount: 1},
		{name: "a secret containing another is masked whole", secrets: []secret.Value{"pass", "password-1"},
			text: "password-1 pass", want: "[MASKED] [MASKED]", wantCount: 2},
		{name: "overlapping secrets become one mask", secrets: []secret.Value{"abcdef", "defghi"},
			text: "xabcdefghiy", want: "x[MASKED]y", wantCount: 1},
		{name: "overlapping occurrences of one secret", secrets: []secret.Value{"aaaa"}, text: "aaaaaa",
			want: "[MASKED]", wantCount: 1},
		{name: "adjacent occurrences stay two", secrets: []secret.Value{"abcd"}, text: "abcdabcd",
			want: "[MASKED][MASKED]", wantCount: 2},
		{name: "each line of a multi-line value on its own", secrets: []secret.Value{key},
			text: "key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nQyNTUxOQAAACDx\n-----END OPENSSH PRIVATE KEY-----\n",
			want: "key:\n[MASKED]\n[MASKED]\n[MASKED]\n[MASKED]\n", wantCount: 4},
		{name: "a line of a multi-line value alone", secrets: []secret.Value{key},
			text: "got QyNTUxOQAAACDx back", want: "got [MASKED] back", wantCount: 1},
		{name: "lines of the replacement are not secrets", secrets: []secret.Value{"MASK", "ASKED"},
			text: "MASKED", want: "MASKED"},
		{name: "end cut: the beginning of a secret", secrets: []secret.Value{"hunter22"}, text: "pw hunt", cut: CutEnd,
			want: "pw [MASKED]", wantCount: 1},
		{name: "end cut: fewer than 4 bytes of it", secrets: []secret.Value{"hunter22"}, text: "pw hun", cut: CutEnd,
			want: "pw hun"},
		{name: "no end cut: the beginning is text", secrets: []secret.Value{"hunter22"}, text: "pw hunt",
			want: "pw hunt"},
		{name: "start cut: the end of a secret", secrets: []secret.Value{"hunter22"}, text: "ter22 is it", cut: CutStart,
			want: "[MASKED] is it", wantCount: 1},
		{name: "both cuts", secrets: []secret.Value{"hunter22"}, text: "er22 and hunter", cut: CutStart | CutEnd,
			want: "[MASKED] and [MASKED]", wantCount: 2},
		{name: "a whole secret at the cut is one mask", secrets: []secret.Value{"hunter22"}, text: "x hunter22",
			cut: CutEnd, want: "x [MASKED]", wantCount: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n := New(tt.secrets...).Mask(tt.text, tt.cut)
			if got != tt.want || n != tt.wantCount {
				t.Fatalf("Mask(%q) = %q, %d; want %q, %d", tt.text, got, n, tt.want, tt.wantCount)
			}
		})
	}
}

// Output arrives in chunks of any size; the text read back is masked
// whole, so a secret split across writes is masked like one written at
// once, and the output so far (cut at its end) never shows a piece of
// 4 bytes or more.
func TestMaskSplitAcrossWrites(t *testing.T) {
	const pw = "s3cr3t-Pa55w0rd"
	m := New(pw)
	text := "connecting as admin:" + pw + "@db\n"
	for size := 1; size <= len(text); size++ {
		var sofar strings.Builder
		for i := 0; i < len(text); i += size {
			sofar.WriteString(text[i:min(i+size, len(text))])
			got, _ := m.Mask(sofar.String(), CutEnd)
			for k := MinLen; k <= len(pw); k++ {
				if strings.Contains(got, pw[:k]) {
					t.Fatalf("chunks of %d: output so far %q shows %q", size, got, pw[:k])
				}
			}
		}
		if got, n := m.Mask(sofar.String(), CutEnd); got != "connecting as admin:[MASKED]@db\n" || n != 1 {
			t.Fatalf("chunks of %d: %q, %d", size, got, n)
		}
	}
}

func TestNilMaskerMasksNothing(t *testing.T) {
	var m *Masker
	if got, n := m.Mask("hunter22", CutStart|CutEnd); got != "hunter22" || n != 0 {
		t.Fatalf("%q %d", got, n)
	}
	if New("ab", "") != nil {
		t.Fatal("a masker of nothing worth masking is not nil")
	}
}

func TestJSON(t *testing.T) {
	m := New("hunter22", "12345678", `q"uote`)
	tests := []struct {
		in, want  string
		wantCount int
	}{
		{`{"b": 1, "a": "x"}`, `{"b": 1, "a": "x"}`, 0}, // untouched, order and spacing kept
		{`{"pw":"hunter22","n":[1,"a hunter22"]}`, `{"n":[1,"a [MASKED]"],"pw":"[MASKED]"}`, 2},
		{`{"hunter22":true}`, `{"[MASKED]":true}`, 1},
		{`12345678`, `"[MASKED]"`, 1},
		{`"say \"q\"uote\" <b>"`, `"say \"[MASKED]\" <b>"`, 1}, // matched in the decoded string
		{`not json hunter22`, `not json [MASKED]`, 1},
	}
	for _, tt := range tests {
		got, n := m.JSON(json.RawMessage(tt.in))
		if string(got) != tt.want || n != tt.wantCount {
			t.Errorf("JSON(%s) = %s, %d; want %s, %d", tt.in, got, n, tt.want, tt.wantCount)
		}
	}
}

// A Masker holds secrets; printing or logging it shows none.
func TestMaskerDoesNotPrintItsSecrets(t *testing.T) {
	m := New("hunter22")
	var b strings.Builder
	fmt.Fprintf(&b, "%v %+v %#v", m, m, m)
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "masker", m)
	if strings.Contains(b.String(), "hunter22") {
		t.Fatalf("printed: %s", b.String())
	}
}
