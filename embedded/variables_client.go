package embedded

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// ErrVariableNotFound is returned by PublicClient.Variable for an unset
// variable.
var ErrVariableNotFound = errors.New("embedded: variable not set")

// Variables returns all the user's variables (userID "": DefaultUserID),
// by key.
func (c *PublicClient) Variables(ctx context.Context, userID string) ([]Variable, error) {
	var resp struct {
		Variables []Variable `json:"variables"`
	}
	err := c.do(ctx, http.MethodGet, "/api/variables"+userQuery(userID), nil, nil, &resp)
	return resp.Variables, err
}

// Variable returns the user's variable key; ErrVariableNotFound when it is
// unset.
func (c *PublicClient) Variable(ctx context.Context, userID, key string) (Variable, error) {
	var v Variable
	if err := checkKey(key); err != nil {
		return v, err
	}
	err := c.do(ctx, http.MethodGet, variablePath(userID, key), ErrVariableNotFound, nil, &v)
	return v, err
}

// SetVariable creates or replaces the user's variable key and returns it
// as stored.
func (c *PublicClient) SetVariable(ctx context.Context, userID, key, value string) (Variable, error) {
	var v Variable
	if err := checkKey(key); err != nil {
		return v, err
	}
	err := c.do(ctx, http.MethodPut, variablePath(userID, key), nil, struct {
		Value string `json:"value"`
	}{value}, &v)
	return v, err
}

// checkKey refuses keys a URL path cannot carry as one segment: servers
// resolve "." and ".." as directory steps.
func checkKey(key string) error {
	if key == "" || key == "." || key == ".." {
		return fmt.Errorf("embedded: variable key %q: want a non-empty name other than . and ..", key)
	}
	return nil
}

func variablePath(userID, key string) string {
	return "/api/variables/" + url.PathEscape(key) + userQuery(userID)
}

func userQuery(userID string) string {
	if userID == "" {
		return ""
	}
	return "?" + url.Values{"userId": {userID}}.Encode()
}
