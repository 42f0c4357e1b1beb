package mask

import (
	"bytes"
	"encoding/json"
)

// JSON masks a JSON value, such as the output a script set with
// cronium.output(): every string, key and number is masked as a whole
// text, so the result is still JSON (a number that held a secret becomes
// the string Replacement). Secrets are matched in the decoded strings, not
// in their escaped form. When nothing is masked raw is returned as it is,
// key order and spacing included; text that is not JSON is masked as text.
func (m *Masker) JSON(raw json.RawMessage) (json.RawMessage, int) {
	if m == nil || len(raw) == 0 {
		return raw, 0
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		s, n := m.Mask(string(raw), 0)
		return json.RawMessage(s), n
	}
	n := 0
	v = m.walk(v, &n)
	if n == 0 {
		return raw, 0
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // cannot happen: v was decoded
		return json.RawMessage(`"` + Replacement + `"`), n
	}
	return json.RawMessage(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), n
}

func (m *Masker) walk(v any, n *int) any {
	switch v := v.(type) {
	case string:
		s, k := m.Mask(v, 0)
		*n += k
		return s
	case json.Number:
		if s, k := m.Mask(string(v), 0); k > 0 {
			*n += k
			return s
		}
		return v
	case []any:
		for i := range v {
			v[i] = m.walk(v[i], n)
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for key, val := range v {
			k, c := m.Mask(key, 0)
			*n += c
			out[k] = m.walk(val, n)
		}
		return out
	}
	return v
}
