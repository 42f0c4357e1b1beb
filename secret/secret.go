// Package secret holds a string type that never prints itself, so that
// credentials and tokens cannot leak through fmt, slog or encoding/json.
package secret

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// Value is a secret string. Use Reveal where the plain text is really needed
// (an Authorization header, an SSH auth method) and nowhere else.
type Value string

const redacted = "[REDACTED]"

func (Value) String() string               { return redacted }
func (Value) GoString() string             { return redacted }
func (Value) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Value) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }
func (Value) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (Value) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }

// Reveal returns the plain text.
func (v Value) Reveal() string { return string(v) }

// IsSet reports whether the secret is non-empty.
func (v Value) IsSet() bool { return v != "" }
