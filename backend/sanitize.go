package backend

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// SanitizeText makes s storable by PostgreSQL, which rejects NUL bytes and
// invalid UTF-8 in text and jsonb columns (the whole request fails with a
// 500, and the job's output is lost). Every NUL and every byte that is not
// part of a valid UTF-8 sequence becomes U+FFFD; everything else is kept
// byte for byte. A string that needs nothing is returned as is.
func SanitizeText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c == 0 {
				b.WriteRune(utf8.RuneError)
			} else {
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// sanitizeJSON does for a JSON document what SanitizeText does for a
// string: jsonb rejects the escape \u0000 as well as invalid UTF-8. A
// document that needs nothing, or that is not valid JSON (encoding it will
// report that), is returned unchanged.
func sanitizeJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || (utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u0000`))) {
		return raw
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep numbers as written
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	out, err := marshalNoEscape(sanitizeValue(v))
	if err != nil {
		return raw
	}
	return out
}

// sanitizeAny sanitizes an arbitrary value by its JSON form.
func sanitizeAny(v any) any {
	if v == nil {
		return nil
	}
	raw, err := marshalNoEscape(v)
	if err != nil {
		return v // encoding the body will report it
	}
	return json.RawMessage(sanitizeJSON(raw))
}

func sanitizeValue(v any) any {
	switch v := v.(type) {
	case string:
		return SanitizeText(v)
	case []any:
		for i := range v {
			v[i] = sanitizeValue(v[i])
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[SanitizeText(k)] = sanitizeValue(e)
		}
		return out
	}
	return v
}

// marshalNoEscape encodes v without turning <, > and & into \u003c etc.:
// scripts' output is shown, not embedded in HTML.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func sanitizeStringPtr(p *string) *string {
	if p == nil {
		return nil
	}
	s := SanitizeText(*p)
	return &s
}
