package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/secret"
)

// ErrJobNotFound is returned by PublicClient for an unknown job id.
var ErrJobNotFound = errors.New("embedded: job not found")

// PublicClient calls the public API (for the submit CLI and tests). It is
// safe for concurrent use.
type PublicClient struct {
	base  string
	token secret.Value
	http  *http.Client
}

// publicTimeout bounds one request of a PublicClient; followWait, the
// wait of a held output request, stays safely below it.
const publicTimeout = 30 * time.Second

var followWait = backend.LongPollWait(publicTimeout)

// NewPublicClient returns a client for the server at baseURL (its origin);
// token may be empty when the public API is open.
func NewPublicClient(baseURL string, token secret.Value) *PublicClient {
	return &PublicClient{base: strings.TrimRight(baseURL, "/"), token: token, http: &http.Client{Timeout: publicTimeout}}
}

// Format prints the client without its token.
func (c *PublicClient) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "embedded.PublicClient{%s}", c.base)
}

// Submit submits a job and returns its id. The body it sends is the only
// encoding of req that reveals its servers' credentials.
func (c *PublicClient) Submit(ctx context.Context, req SubmitRequest) (string, error) {
	var resp struct {
		ID string `json:"id"`
	}
	err := c.do(ctx, http.MethodPost, "/api/jobs", nil, req.wire(), &resp)
	return resp.ID, err
}

// Job returns the job's view.
func (c *PublicClient) Job(ctx context.Context, id string) (JobView, error) {
	var v JobView
	err := c.do(ctx, http.MethodGet, "/api/jobs/"+url.PathEscape(id), ErrJobNotFound, nil, &v)
	return v, err
}

// Output returns the job's output as it stands.
func (c *PublicClient) Output(ctx context.Context, id string) (OutputView, error) {
	var o OutputView
	err := c.do(ctx, http.MethodGet, "/api/jobs/"+url.PathEscape(id)+"/output", ErrJobNotFound, nil, &o)
	return o, err
}

// OutputAfter returns the job's output once its version differs from
// after (a version an earlier answer carried), or as it stands after
// wait. A server without versions answers at once, with Version 0.
func (c *PublicClient) OutputAfter(ctx context.Context, id string, after int64, wait time.Duration) (OutputView, error) {
	q := url.Values{"after": {strconv.FormatInt(after, 10)}, backend.QueryWait: {backend.FormatWait(wait)}}
	var o OutputView
	err := c.do(ctx, http.MethodGet, "/api/jobs/"+url.PathEscape(id)+"/output?"+q.Encode(), ErrJobNotFound, nil, &o)
	return o, err
}

// Events returns the job's event log.
func (c *PublicClient) Events(ctx context.Context, id string) ([]Event, error) {
	var resp struct {
		Events []Event `json:"events"`
	}
	err := c.do(ctx, http.MethodGet, "/api/jobs/"+url.PathEscape(id)+"/events", ErrJobNotFound, nil, &resp)
	return resp.Events, err
}

// List returns up to limit jobs (0: the server's default), newest first,
// optionally only those with the raw status.
func (c *PublicClient) List(ctx context.Context, status string, limit int) ([]JobView, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var resp struct {
		Jobs []JobView `json:"jobs"`
	}
	err := c.do(ctx, http.MethodGet, "/api/jobs?"+q.Encode(), nil, nil, &resp)
	return resp.Jobs, err
}

// Cancel marks the job cancelled; the orchestrator notices on its next
// acknowledge.
func (c *PublicClient) Cancel(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/api/jobs/"+url.PathEscape(id)+"/cancel", ErrJobNotFound, struct{}{}, nil)
}

// do sends one request. notFound is what a 404 means on a path that names
// one thing (ErrJobNotFound: that job is unknown); with notFound nil a 404
// means a wrong server and is reported as such.
func (c *PublicClient) do(ctx context.Context, method, path string, notFound error, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("embedded: %s %s: encode: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("embedded: %s %s: %w", method, path, err)
	}
	if c.token.IsSet() {
		req.Header.Set("Authorization", "Bearer "+c.token.Reveal())
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("embedded: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("embedded: %s %s: read: %w", method, path, err)
	}
	if resp.StatusCode == http.StatusNotFound && notFound != nil {
		return fmt.Errorf("%w: %s", notFound, path)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = "not an answer of the embedded backend's API (wrong server?)"
		}
		return fmt.Errorf("embedded: %s %s: %s: %s", method, c.base+path, resp.Status, e.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("embedded: %s %s: decode: %w", method, path, err)
	}
	return nil
}
