package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Response bodies are read whole before decoding; these bound them.
const (
	maxResponseBody = 64 << 20 // a queue batch carries whole scripts
	maxErrorBody    = 64 << 10
)

// request is one API call, encoded once and replayed by every attempt.
type request struct {
	method string
	route  string
	path   string
	query  url.Values
	body   *payload // nil for GET
	// answered, when set, sees the headers of each 2xx answer (before
	// its body is decoded).
	answered func(http.Header)
	// timeout bounds each attempt when longer than the client's: a held
	// poll's wait and margin.
	timeout time.Duration
}

// newRequest prepares a call with body (nil: none) as its JSON. texts
// point to strings of body, a job's output, that are escaped as the body
// is sent when they are large (see encodePayload).
func (c *Client) newRequest(method, route, id string, query url.Values, body any, texts ...*string) (*request, error) {
	return c.newRequestAt(method, route, jobPath(route, id), query, body, texts...)
}

// newRequestAt is newRequest for a path already filled in (and escaped).
func (c *Client) newRequestAt(method, route, path string, query url.Values, body any, texts ...*string) (*request, error) {
	r := &request{method: method, route: route, path: path, query: query}
	if method == http.MethodGet {
		return r, nil
	}
	// The backend parses a body unconditionally: an empty one is a 500.
	r.body = &payload{parts: [][]byte{[]byte("{}")}, size: 2}
	if body != nil {
		p, err := encodePayload(body, texts...)
		if err != nil {
			return nil, fmt.Errorf("backend: %s %s: encode body: %w", method, r.path, err)
		}
		if len(p.texts) > 0 || string(p.parts[0]) != "null" {
			r.body = p
		}
	}
	return r, nil
}

// attempt performs one HTTP exchange bounded by the per-attempt timeout and
// decodes a 2xx body into out (when out is non-nil).
func (c *Client) attempt(ctx context.Context, r *request, out any) error {
	ctx, cancel := context.WithTimeout(ctx, max(c.timeout, r.timeout))
	defer cancel()
	// Once headers are written the backend may act on the request, so a
	// failure after that point is ambiguous; before it, it is not.
	var sent atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { sent.Store(true) }})

	target := c.base + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = r.body.reader()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return fmt.Errorf("backend: %s %s: %w", r.method, r.path, err)
	}
	if r.body != nil {
		req.ContentLength = r.body.size
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(r.body.reader()), nil }
	}
	req.Header.Set("Authorization", "Bearer "+c.token.Reveal())
	req.Header.Set("X-Orchestrator-ID", c.orchID)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "cronium-orchestrator")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.obs.ObserveRequest(r.route, r.method, 0, time.Since(start))
		return &TransportError{Method: r.method, Path: r.path, Sent: sent.Load(), Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()

	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	limit := int64(maxErrorBody)
	if ok {
		limit = maxResponseBody
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		c.obs.ObserveRequest(r.route, r.method, 0, time.Since(start))
		return &TransportError{Method: r.method, Path: r.path, Sent: true, Err: fmt.Errorf("read response: %w", err)}
	}
	c.obs.ObserveRequest(r.route, r.method, resp.StatusCode, time.Since(start))
	if !ok {
		e := newAPIError(r.method, r.route, r.path, resp.StatusCode, data, c.token.Reveal())
		if resp.StatusCode == http.StatusTooManyRequests {
			e.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		return e
	}
	c.lastOK.Store(time.Now().UnixNano())
	if r.answered != nil {
		r.answered(resp.Header)
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("backend: %s %s: response larger than %d bytes", r.method, r.path, limit)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		// Never quote the body: rows may carry credentials. Its type tells
		// a proxy's or a login page (HTML) from a broken answer.
		what := "decode response"
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "" && mt != "application/json" {
			what = "the answer is " + mt + ", not JSON (is api.url the backend's own origin?)"
		}
		return fmt.Errorf("backend: %s %s: %s (%d bytes): %w", r.method, r.path, what, len(data), err)
	}
	return nil
}

// unwrapURLError drops *url.Error's "Post \"http://...\":" prefix: the
// TransportError names method and path already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or
// unreadable (the normal back-off applies then).
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// retry runs op until it succeeds, fails permanently (any 4xx but 429, a
// local error), ctx ends or RetryMaxElapsed would be exceeded. The error
// returned is op's last one; when ctx ended the call, ctx's error naming
// the last failure that ctx did not cause.
func (c *Client) retry(ctx context.Context, route string, op func(context.Context) error) error {
	return c.retryWithin(ctx, route, c.maxElapsed, op)
}

// retryWithin is retry with a total budget of maxElapsed.
func (c *Client) retryWithin(ctx context.Context, route string, maxElapsed time.Duration, op func(context.Context) error) error {
	var last, lastAnswer error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := op(ctx)
		if err == nil {
			return struct{}{}, nil
		}
		last = err
		if ctx.Err() == nil {
			lastAnswer = err
		}
		if !IsTransient(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		var api *APIError
		if errors.As(err, &api) && api.retryAfter > 0 {
			return struct{}{}, &backoff.RetryAfterError{Duration: api.retryAfter}
		}
		return struct{}{}, err
	},
		backoff.WithBackOff(c.newBackOff()),
		backoff.WithMaxElapsedTime(maxElapsed),
		backoff.WithNotify(func(error, time.Duration) { c.obs.ObserveRetry(route) }),
	)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && lastAnswer != nil:
		return fmt.Errorf("%w (last failure: %w)", context.Cause(ctx), lastAnswer)
	case last != nil:
		return last
	default:
		return err
	}
}

// call is retry around a single attempt: for calls without side effects
// that could be doubled.
func (c *Client) call(ctx context.Context, r *request, out any) error {
	return c.retry(ctx, r.route, func(ctx context.Context) error { return c.attempt(ctx, r, out) })
}

// callForScript is call for a request a user's script waits on: the whole
// call, attempts included, ends within Options.ScriptCallMaxElapsed. The
// back-off's own budget only stops retries between attempts, so a hanging
// attempt is cut by a deadline; its error then wraps
// context.DeadlineExceeded and names the last answer.
func (c *Client) callForScript(ctx context.Context, r *request, out any) error {
	ctx, cancel := context.WithTimeoutCause(ctx, c.scriptMax,
		fmt.Errorf("backend: %s %s: gave up after %v, the budget of a call a script waits on: %w",
			r.method, r.path, c.scriptMax, context.DeadlineExceeded))
	defer cancel()
	return c.retryWithin(ctx, r.route, c.scriptMax, func(ctx context.Context) error { return c.attempt(ctx, r, out) })
}

// callOnce sends a request whose repetition could do harm (a terminal
// update, a release) so that it takes effect at most once. After an
// ambiguous failure (the backend may have applied it) each further attempt
// first asks through acknowledge whether it did: landed judges the answer
// (the job's row, or the acknowledge's error) and says whether the call is
// done; its error ends the call.
//
// The doubt outlives the call: a call that fails after an ambiguous
// failure leaves jobID in c.unsure, and the next callOnce for that job
// (a caller's retry of the same call) starts with the check. Success
// clears it.
//
// One window remains that the backend's API cannot close: a first request
// still being processed while acknowledge runs. The back-off interval before
// the check makes that unlikely; a per-attempt timeout far above the
// backend's latency makes it rarer still.
func (c *Client) callOnce(ctx context.Context, r *request, jobID string, landed func(JobRow, error) (bool, error)) error {
	notBefore, ambiguous := c.unsure.Load(jobID)
	if ambiguous {
		if err := sleepUntil(ctx, notBefore.(time.Time)); err != nil {
			return fmt.Errorf("backend: %s %s: waiting for an earlier call to settle: %w", r.method, r.path, err)
		}
	}
	err := c.retry(ctx, r.route, func(ctx context.Context) error {
		if ambiguous {
			done, err := landed(c.acknowledge(ctx, jobID, c.attempt))
			if err != nil || done {
				return err
			}
		}
		err := c.attempt(ctx, r, nil)
		if IsAmbiguous(err) {
			ambiguous = true
		}
		return err
	})
	switch {
	case err == nil:
		c.unsure.Delete(jobID)
	case ambiguous:
		c.unsure.LoadOrStore(jobID, time.Time{})
	}
	return err
}

// InDoubt says a terminal update or release for the job may have landed
// without this Client knowing (it was sent by an earlier process): the next
// such call for the job first asks whether it did. An earlier process
// killed mid-call may have left its request with a slow backend, which
// applies it once it gets to it, after our check would have said "not
// yet": the check waits until such a request would have timed out on its
// own sender.
func (c *Client) InDoubt(jobID string) { c.unsure.Store(jobID, time.Now().Add(c.timeout)) }

// sleepUntil waits until t (at once when it has passed) or ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// landedIn returns a landed function for callOnce: the update took effect
// if the job is in one of statuses, which it cannot reach otherwise.
func landedIn(statuses ...string) func(JobRow, error) (bool, error) {
	return func(row JobRow, err error) (bool, error) {
		return err == nil && slices.Contains(statuses, row.Status), err
	}
}

// released is callOnce's landed for a release: a released job has no
// owner, so acknowledge answers 403. Retrying a release that landed could
// take the job back from an orchestrator that claimed it since.
func released(_ JobRow, err error) (bool, error) {
	if errors.Is(err, ErrNotOwner) {
		return true, nil
	}
	return false, err
}
