// Package httpreq runs HTTP_REQUEST jobs: one request, its response body as
// output. A non-2xx status fails the job.
package httpreq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cronium/orchestrator/executors"
)

// Executor sends the request of an HTTP_REQUEST job.
type Executor struct {
	client *http.Client
}

// New returns an executor using client (nil: a client with no overall
// timeout; each job's own timeout bounds its request).
func New(client *http.Client) *Executor {
	if client == nil {
		client = &http.Client{}
	}
	return &Executor{client: client}
}

// Run sends the request and streams the response body to out.Stdout.
// A request cannot be taken back: when an earlier attempt may already have
// sent it (spec.Resume.Resuming), Run refuses rather than send it twice.
func (e *Executor) Run(ctx context.Context, spec executors.Spec, out executors.Output) (executors.Result, error) {
	if spec.HTTP == nil {
		return executors.Result{}, fmt.Errorf("%w: no HTTP request", executors.ErrInvalidSpec)
	}
	if spec.Resume.Resuming {
		return executors.Result{}, fmt.Errorf("%w: the HTTP request may already have been sent; it is not sent twice",
			executors.ErrNotResumable)
	}
	var res executors.Result
	res.Timings.SetupStarted = time.Now()
	if spec.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, spec.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, spec.HTTP.Method, spec.HTTP.URL, strings.NewReader(spec.HTTP.Body))
	if err != nil {
		return res, fmt.Errorf("%w: %v", executors.ErrInvalidSpec, err)
	}
	for k, v := range spec.HTTP.Headers {
		req.Header.Set(k, v)
	}
	res.Timings.SetupCompleted = time.Now()
	res.Timings.ExecStarted = res.Timings.SetupCompleted
	resp, err := e.client.Do(req)
	if err == nil {
		_, err = io.Copy(out.Stdout, resp.Body)
		resp.Body.Close()
	}
	res.Timings.ExecCompleted = time.Now()
	switch {
	case err != nil && errors.Is(context.Cause(ctx), executors.ErrDetached):
		return res, fmt.Errorf("http request interrupted: %w", executors.ErrNotResumable)
	case err != nil && ctx.Err() == context.DeadlineExceeded:
		res.TimedOut = true
		res.Reason = fmt.Sprintf("HTTP request timed out after %s", spec.Timeout)
		return res, nil
	case err != nil && ctx.Err() != nil:
		res.Cancelled = true
		res.Reason = "cancelled"
		return res, nil
	case err != nil:
		// Say what failed without the URL's query string, which may hold tokens.
		return res, fmt.Errorf("http %s %s: %w", spec.HTTP.Method, redactURL(spec.HTTP.URL), unwrapURLError(err))
	}
	res.Exited = true
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		res.ExitCode = 1
		res.Reason = "HTTP " + resp.Status
		fmt.Fprintf(out.Stderr, "HTTP %s\n", resp.Status)
	}
	return res, nil
}

// Abandon has nothing to clean up: a request leaves nothing behind here.
func (e *Executor) Abandon(context.Context, executors.Spec) error { return nil }

func redactURL(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		return raw[:i]
	}
	return raw
}

// unwrapURLError drops *url.Error's copy of the full URL.
func unwrapURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
