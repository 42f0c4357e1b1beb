package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// The calls below serve Cronium's runtime helpers while a user's script
// waits for them: each is bounded in total by Options.ScriptCallMaxElapsed
// (seconds), not by the long budget of job reporting. Variable values may
// be secrets: they never enter an error, and this package logs nothing.

// GetVariable returns the user's variable key. An unset variable is not an
// error: found is false. A 404 that is not the backend's own JSON answer
// (a backend without the route, a proxy) is an error, so that a missing
// route never passes for every variable being unset.
func (c *Client) GetVariable(ctx context.Context, userID, key string) (value string, found bool, err error) {
	r, err := c.variableRequest(http.MethodGet, userID, key, nil)
	if err != nil {
		return "", false, err
	}
	var resp struct {
		Value json.RawMessage `json:"value"`
	}
	err = c.callForScript(ctx, r, &resp)
	var api *APIError
	if errors.As(err, &api) && api.Status == http.StatusNotFound && api.jsonError {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	value, err = variableText(resp.Value)
	if err != nil {
		return "", false, fmt.Errorf("backend: get variable %q: %w", key, err)
	}
	return value, true, nil
}

// variableText reads a variable's "value": a string, or the text of a
// number or boolean another client stored; null is empty. It never quotes
// what it refuses (FlexString would): the value may be a secret.
func variableText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", errors.New("value is not a JSON string")
		}
		return s, nil
	case raw[0] == '{' || raw[0] == '[':
		return "", errors.New("value is an object or array, want a string")
	}
	return string(raw), nil
}

// SetVariable sets the user's variable key to value, creating it when
// unset. It is retried like a read: setting the same value twice is
// harmless. value must be text PostgreSQL can store (valid UTF-8, no NUL):
// it is refused, unsent, rather than altered.
func (c *Client) SetVariable(ctx context.Context, userID, key, value string) error {
	if !storableText(value) {
		return fmt.Errorf("backend: set variable %q: value is not valid UTF-8 text without NUL bytes: %w", key, ErrBadRequest)
	}
	r, err := c.variableRequest(http.MethodPut, userID, key, struct {
		Value string `json:"value"`
	}{value})
	if err != nil {
		return err
	}
	return c.callForScript(ctx, r, nil)
}

// ExecutionContext returns the backend's context of an execution (its
// event's and user's metadata) as the raw JSON object it sent. Before the
// execution record exists the backend answers 404: errors.Is(err,
// ErrNotFound).
func (c *Client) ExecutionContext(ctx context.Context, executionID string) (json.RawMessage, error) {
	if err := needID("execution", executionID); err != nil {
		return nil, err
	}
	r, err := c.newRequest(http.MethodGet, RouteExecutionContext, executionID, nil, nil)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := c.callForScript(ctx, r, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// variableRequest builds a request on RouteVariable with both segments
// escaped. Keys a URL path cannot carry as one segment are refused: an
// empty one, "." and ".." (servers and proxies resolve them as directory
// steps) and text PostgreSQL cannot store.
func (c *Client) variableRequest(method, userID, key string, body any) (*request, error) {
	if err := needID("user", userID); err != nil {
		return nil, err
	}
	if !pathSegmentOK(userID) || !pathSegmentOK(key) {
		return nil, fmt.Errorf("backend: variable key %q of user %q cannot be sent: %w", key, userID, ErrBadRequest)
	}
	path := strings.NewReplacer("{userId}", url.PathEscape(userID), "{key}", url.PathEscape(key)).Replace(RouteVariable)
	return c.newRequestAt(method, RouteVariable, path, nil, body)
}

func pathSegmentOK(s string) bool {
	return s != "" && s != "." && s != ".." && storableText(s)
}

// storableText: PostgreSQL refuses NUL and invalid UTF-8 in text columns
// (the backend answers 500, which would be retried in vain).
func storableText(s string) bool {
	return strings.IndexByte(s, 0) < 0 && utf8.ValidString(s)
}
