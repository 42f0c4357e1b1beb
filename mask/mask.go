// Package mask replaces secrets in job output with [MASKED] before the
// output leaves the process (execution updates, /complete, the admin API
// and status page). It is pure: a Masker is built from the values to hide,
// and masking a text changes nothing else.
//
// What a job's output log keeps is never masked: its byte counts are the
// offsets a resumed execution continues from. Texts are masked whole when
// they are read, so a secret written in several pieces is masked like one
// written at once.
package mask

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/cronium/orchestrator/secret"
)

// Replacement is what each occurrence of a secret becomes.
const Replacement = "[MASKED]"

// MinLen is the shortest value masked: shorter ones would mask ordinary
// words and numbers all over the output.
const MinLen = 4

// Masker replaces a fixed set of secrets. A nil *Masker masks nothing.
// It is immutable, so safe for concurrent use.
type Masker struct {
	// secrets are distinct, at least MinLen bytes, one line each, longest
	// first.
	secrets []secret.Value
}

// New returns a Masker of values, or nil when none is worth masking. Each
// line of a multi-line value (a private key) is masked on its own, so that
// it is masked however the lines are printed. Lines shorter than MinLen,
// and lines that are part of Replacement itself (masking them would mask
// the masks), are left out.
func New(values ...secret.Value) *Masker {
	var ss []secret.Value
	for _, v := range values {
		for line := range strings.SplitSeq(v.Reveal(), "\n") {
			line = strings.TrimSuffix(line, "\r")
			if len(line) < MinLen || strings.Contains(Replacement, line) {
				continue
			}
			ss = append(ss, secret.Value(line))
		}
	}
	if len(ss) == 0 {
		return nil
	}
	slices.SortFunc(ss, func(a, b secret.Value) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a.Reveal(), b.Reveal()))
	})
	return &Masker{secrets: slices.Compact(ss)}
}

// Format and LogValue show how many secrets a Masker holds, never them:
// fmt does not reach secret.Value's own redaction inside a struct.
func (m *Masker) Format(f fmt.State, _ rune) { fmt.Fprint(f, m.describe()) }

func (m *Masker) LogValue() slog.Value { return slog.StringValue(m.describe()) }

func (m *Masker) describe() string {
	if m == nil {
		return "mask.Masker(none)"
	}
	return fmt.Sprintf("mask.Masker(%d secrets)", len(m.secrets))
}

// Cut says where a text was cut out of a longer stream, so that a secret
// may straddle its edge: the part of it on this side is masked too, when
// it is at least MinLen bytes.
type Cut uint8

const (
	// CutStart: the text may begin in the middle of a secret (after an
	// omission marker).
	CutStart Cut = 1 << iota
	// CutEnd: the text may end in the middle of a secret (the output so
	// far of a running job, a truncated line, the head before an
	// omission marker).
	CutEnd
)

// span is a byte range [start, end) to replace.
type span struct{ start, end int }

// Mask returns text with every occurrence of a secret replaced, and how
// many replacements it made. Occurrences that overlap (a secret that
// contains another, two that share bytes) become one Replacement, so no
// piece of either shows.
func (m *Masker) Mask(text string, cut Cut) (string, int) {
	if m == nil || text == "" {
		return text, 0
	}
	var spans []span
	for _, s := range m.secrets {
		v := s.Reveal()
		for i := 0; i < len(text); {
			j := strings.Index(text[i:], v)
			if j < 0 {
				break
			}
			spans = append(spans, span{i + j, i + j + len(v)})
			i += j + 1 // overlapping occurrences of one secret merge below
		}
	}
	if cut&CutStart != 0 {
		if n := m.leadingPiece(text); n > 0 {
			spans = append(spans, span{0, n})
		}
	}
	if cut&CutEnd != 0 {
		if n := m.trailingPiece(text); n > 0 {
			spans = append(spans, span{len(text) - n, len(text)})
		}
	}
	if len(spans) == 0 {
		return text, 0
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	var b strings.Builder
	b.Grow(len(text))
	n, done := 0, 0
	for i := 0; i < len(spans); {
		cur := spans[i]
		for i++; i < len(spans) && spans[i].start < cur.end; i++ {
			cur.end = max(cur.end, spans[i].end)
		}
		b.WriteString(text[done:cur.start])
		b.WriteString(Replacement)
		done = cur.end
		n++
	}
	b.WriteString(text[done:])
	return b.String(), n
}

// Text is Mask without cuts or count, for texts that are whole: a reason,
// a server's output.
func (m *Masker) Text(text string) string {
	s, _ := m.Mask(text, 0)
	return s
}

// trailingPiece is the length of the longest end of text, at least
// MinLen bytes, that is the beginning of a secret (but not all of it:
// whole ones are found anyway).
func (m *Masker) trailingPiece(text string) int {
	best := 0
	for _, s := range m.secrets {
		v := s.Reveal()
		for k := min(len(v)-1, len(text)); k >= max(MinLen, best+1); k-- {
			if strings.HasSuffix(text, v[:k]) {
				best = k
				break
			}
		}
	}
	return best
}

// leadingPiece is the length of the longest beginning of text, at least
// MinLen bytes, that is the end of a secret.
func (m *Masker) leadingPiece(text string) int {
	best := 0
	for _, s := range m.secrets {
		v := s.Reveal()
		for k := min(len(v)-1, len(text)); k >= max(MinLen, best+1); k-- {
			if strings.HasPrefix(text, v[len(v)-k:]) {
				best = k
				break
			}
		}
	}
	return best
}
