package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinels for errors.Is on errors returned by Client. They classify the
// backend's answer, never a transport failure.
var (
	ErrUnauthorized = errors.New("backend: unauthorized") // 401: wrong or missing token
	ErrNotOwner     = errors.New("backend: not owner")    // 403: the job is claimed by another orchestrator
	ErrNotFound     = errors.New("backend: not found")    // 404
	ErrBadRequest   = errors.New("backend: bad request")  // any other 4xx except 429
)

// APIError is a non-2xx answer of the backend. Message and Details are the
// body's "error" and "details" strings (a non-JSON body: its first 200
// bytes). It never holds the request body, the token or a successful
// response body.
type APIError struct {
	Method  string
	Route   string // path template, e.g. /api/internal/jobs/{id}/complete
	Path    string // the concrete path, without query
	Status  int
	Message string
	Details string

	retryAfter time.Duration // a 429's Retry-After, 0 when absent
	// jsonError: the body was the backend's {"error":..}, not a proxy's
	// or framework's page (a route the backend lacks answers 404 in HTML).
	jsonError bool
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "backend: %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Details != "" {
		fmt.Fprintf(&b, " (%s)", e.Details)
	}
	return b.String()
}

// Is maps the status onto the package's sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrNotOwner:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrBadRequest:
		switch e.Status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests:
			return false
		}
		return e.Status >= 400 && e.Status < 500
	}
	return false
}

func (e *APIError) transient() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// ambiguous: a 5xx may come after the backend committed the change (it
// runs its actions after the write, and those can fail). 429 is a refusal
// before any work.
func (e *APIError) ambiguous() bool { return e.Status >= 500 }

// maxErrorText bounds how much of a non-JSON error body reaches an error.
const maxErrorText = 200

// newAPIError builds the error for a non-2xx response from at most the
// first bytes of its body. token is redacted in case a proxy echoes it.
func newAPIError(method, route, path string, status int, body []byte, token string) *APIError {
	e := &APIError{Method: method, Route: route, Path: path, Status: status}
	var payload struct {
		Error   any `json:"error"`
		Details any `json:"details"`
	}
	if json.Unmarshal(body, &payload) == nil && payload.Error != nil {
		e.Message = textOf(payload.Error)
		e.Details = textOf(payload.Details)
		e.jsonError = true
	} else {
		e.Message = strings.TrimSpace(truncateUTF8(string(body), maxErrorText))
	}
	if token != "" {
		e.Message = strings.ReplaceAll(e.Message, token, "[REDACTED]")
		e.Details = strings.ReplaceAll(e.Details, token, "[REDACTED]")
	}
	return e
}

// textOf renders an "error"/"details" value: the page promises strings, but
// an object must not be lost either.
func textOf(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return truncateUTF8(v, 4*maxErrorText)
	default:
		b, _ := json.Marshal(v)
		return truncateUTF8(string(b), maxErrorText)
	}
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune and
// makes the result valid UTF-8.
func truncateUTF8(s string, n int) string {
	if len(s) > n {
		s = s[:n]
		for i := 1; i < utf8.UTFMax && i <= len(s); i++ {
			if utf8.RuneStart(s[len(s)-i]) {
				if !utf8.FullRuneInString(s[len(s)-i:]) {
					s = s[:len(s)-i]
				}
				break
			}
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// TransportError is a failure to get any HTTP answer: connection refused or
// reset, timeout, a broken response. Sent reports whether the request
// may have reached the backend (its headers were written).
type TransportError struct {
	Method string
	Path   string
	Sent   bool
	Err    error
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("backend: %s %s: %v", e.Method, e.Path, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// IsTransient reports whether err is worth retrying later: a transport
// failure, a per-attempt timeout, a 5xx or a 429. Cancellation by the
// caller and every other 4xx are not transient.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var api *APIError
	if errors.As(err, &api) {
		return api.transient()
	}
	var te *TransportError
	return errors.As(err, &te)
}

// IsAmbiguous reports whether the request behind err may have taken effect
// although the call failed: a transport failure after the request was sent,
// or a 5xx. After an ambiguous PollJobs, jobs may be claimed under our id
// without our knowing: OrphanedJobs finds them.
func IsAmbiguous(err error) bool {
	var api *APIError
	if errors.As(err, &api) {
		return api.ambiguous()
	}
	var te *TransportError
	return errors.As(err, &te) && te.Sent
}
