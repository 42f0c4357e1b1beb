package backend

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"unicode/utf8"
)

// bigText is the size from which a text of a request body (a job's
// output) is escaped as the body is sent rather than encoded beforehand:
// encoding/json builds a body in its own buffer and then copies it out,
// two whole copies of a 50 MB output for each call that carries it.
const bigText = 64 << 10

// payload is a request's JSON body: raw JSON with, between its parts,
// texts written as JSON strings while it is read. Each attempt reads it
// anew (reader).
type payload struct {
	parts [][]byte // len(texts)+1 pieces of raw JSON
	texts []string
	size  int64
}

// encodePayload is v as JSON, as marshalNoEscape has it, byte for byte;
// the strings texts point to (fields of v) that are large are escaped at
// each reading instead of copied into the encoding. It replaces them in
// v for the encoding and restores them.
func encodePayload(v any, texts ...*string) (*payload, error) {
	tokens, saved := swapBigTexts(texts)
	raw, err := marshalNoEscape(v)
	for i, tok := range tokens {
		if tok != "" {
			*texts[i] = saved[i]
		}
	}
	if err != nil {
		return nil, err
	}
	// Split at each stand-in, in the order the encoding has them.
	type cut struct {
		at   int
		tok  string
		text string
	}
	var cuts []cut
	for i, tok := range tokens {
		if tok == "" {
			continue
		}
		// Each place the text is: once a field, twice if two fields
		// point to it.
		quoted := []byte(`"` + tok + `"`)
		found := false
		for from := 0; ; {
			at := bytes.Index(raw[from:], quoted)
			if at < 0 {
				break
			}
			cuts = append(cuts, cut{from + at, string(quoted), saved[i]})
			from += at + len(quoted)
			found = true
		}
		if !found {
			return nil, errors.New("backend: a large text's stand-in is not in the encoded body")
		}
	}
	slices.SortFunc(cuts, func(a, b cut) int { return cmp.Compare(a.at, b.at) })
	p := &payload{}
	from := 0
	for _, c := range cuts {
		p.parts = append(p.parts, raw[from:c.at])
		p.texts = append(p.texts, c.text)
		from = c.at + len(c.tok)
	}
	p.parts = append(p.parts, raw[from:])
	// Measured by reading it, so that the length cannot disagree with
	// what is sent: a pass of escaping, no copy kept.
	if p.size, err = io.Copy(io.Discard, p.reader()); err != nil {
		return nil, err
	}
	return p, nil
}

// swapBigTexts replaces each large text with a random stand-in that JSON
// encodes as itself; it returns the stand-ins ("" where a text stays, is
// nil or was named before) and the texts.
func swapBigTexts(texts []*string) (tokens, saved []string) {
	tokens, saved = make([]string, len(texts)), make([]string, len(texts))
	for i, p := range texts {
		if p == nil || slices.Contains(texts[:i], p) {
			continue
		}
		saved[i] = *p
		if len(*p) < bigText {
			continue
		}
		var r [16]byte
		_, _ = rand.Read(r[:]) // never fails (crypto/rand)
		tokens[i] = "cronium-text-" + hex.EncodeToString(r[:])
		*p = tokens[i]
	}
	return tokens, saved
}

// reader reads the body from its start.
func (p *payload) reader() io.Reader {
	if len(p.texts) == 0 {
		return bytes.NewReader(p.parts[0])
	}
	rs := make([]io.Reader, 0, 2*len(p.parts))
	for i, b := range p.parts {
		rs = append(rs, bytes.NewReader(b))
		if i < len(p.texts) {
			rs = append(rs, &quotedReader{s: p.texts[i]})
		}
	}
	return io.MultiReader(rs...)
}

// Encoded is a value's JSON (no HTML escaping) that is read, not held: its
// large texts, a job's output, are escaped as they are read (see
// encodePayload). For a completion kept on disk: the journal writes it as
// it reads it.
type Encoded struct{ p *payload }

// EncodeJSON encodes v; texts point to strings of v that may be large.
// v's strings must not change while the Encoded is read.
func EncodeJSON(v any, texts ...*string) (Encoded, error) {
	p, err := encodePayload(v, texts...)
	if err != nil {
		return Encoded{}, err
	}
	return Encoded{p}, nil
}

// Len is the encoding's length in bytes.
func (e Encoded) Len() int64 { return e.p.size }

// Reader reads the encoding from its start; each call reads it anew.
func (e Encoded) Reader() io.Reader { return e.p.reader() }

// quotedReader reads s as a JSON string, quotes included, escaped as
// encoding/json escapes a string without HTML escaping.
type quotedReader struct {
	s       string
	i       int  // next byte of s
	opened  bool // the opening quote was read
	closed  bool // the closing quote was read
	pending []byte
	esc     [6]byte
}

func (q *quotedReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(q.pending) > 0 {
			c := copy(p[n:], q.pending)
			n += c
			q.pending = q.pending[c:]
			continue
		}
		switch {
		case !q.opened:
			q.opened = true
			p[n] = '"'
			n++
			continue
		case q.i == len(q.s) && q.closed:
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		case q.i == len(q.s):
			q.closed = true
			p[n] = '"'
			n++
			continue
		}
		// The longest run that needs no escaping goes at once.
		run := q.i
		for run < len(q.s) && run-q.i < len(p)-n && safeASCII(q.s[run]) {
			run++
		}
		if run > q.i {
			n += copy(p[n:], q.s[q.i:run])
			q.i = run
			continue
		}
		q.pending = q.escape()
	}
	return n, nil
}

// escape consumes one character of s that needs more than copying and
// returns what stands for it: an escape, or a valid multi-byte rune as it
// is.
func (q *quotedReader) escape() []byte {
	c := q.s[q.i]
	if c < utf8.RuneSelf {
		q.i++
		return append(q.esc[:0], escapeASCII(c)...)
	}
	r, size := utf8.DecodeRuneInString(q.s[q.i:])
	q.i += size
	switch {
	case r == utf8.RuneError && size == 1:
		return append(q.esc[:0], `\ufffd`...)
	case r == '\u2028' || r == '\u2029':
		return append(q.esc[:0], `\u202`+string(hexDigits[r&0xF])...)
	}
	return append(q.esc[:0], q.s[q.i-size:q.i]...)
}

const hexDigits = "0123456789abcdef"

// safeASCII: an ASCII byte JSON takes as it is (no HTML escaping).
func safeASCII(c byte) bool { return c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' }

func escapeASCII(c byte) string {
	switch c {
	case '"', '\\':
		return `\` + string(c)
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	}
	return `\u00` + string(hexDigits[c>>4]) + string(hexDigits[c&0xF])
}
