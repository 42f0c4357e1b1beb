package backend

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/cronium/orchestrator/secret"
)

// Options configure a Client.
type Options struct {
	BaseURL         string // bare origin, e.g. http://localhost:5001
	Token           secret.Value
	OrchestratorID  string
	HTTPClient      *http.Client  // nil: a default one
	RequestTimeout  time.Duration // per attempt; 0: DefaultRequestTimeout
	RetryMaxElapsed time.Duration // total time one call may spend retrying; 0: DefaultRetryMaxElapsed
	Observer        Observer      // nil: none

	// ScriptCallMaxElapsed bounds, in total, a call a user's script waits
	// on (variables, execution context); 0: DefaultScriptCallMaxElapsed.
	ScriptCallMaxElapsed time.Duration
}

// Defaults for zero Options fields.
const (
	DefaultRequestTimeout  = 30 * time.Second
	DefaultRetryMaxElapsed = 2 * time.Minute
	// A script blocks in a helper call: a few seconds of retries ride out
	// a backend restart's blip, longer would look like a hung script.
	DefaultScriptCallMaxElapsed = 5 * time.Second
)

// Observer receives one call per HTTP attempt and one per retry. route is the
// path TEMPLATE ("/api/internal/jobs/{id}/complete"), never an id, so that
// it can label metrics without unbounded cardinality. It is called from the
// caller's goroutine and must not block.
type Observer interface {
	ObserveRequest(route, method string, status int, d time.Duration) // status 0 = transport error
	ObserveRetry(route string)
}

// Route templates, as the Observer and APIError.Route see them.
const (
	RouteQueue             = "/api/internal/jobs/queue"
	RouteAcknowledge       = "/api/internal/jobs/{id}/acknowledge"
	RouteStatus            = "/api/internal/jobs/{id}/status"
	RouteComplete          = "/api/internal/jobs/{id}/complete"
	RouteFail              = "/api/internal/jobs/{id}/fail"
	RouteRelease           = "/api/internal/jobs/{id}/release"
	RouteOrphaned          = "/api/internal/jobs/orphaned"
	RouteExecutionCreate   = "/api/internal/executions/{id}/create"
	RouteExecutionUpdate   = "/api/internal/executions/{id}/update"
	RouteHealth            = "/api/internal/orchestrator/health"
	RouteHeartbeat         = "/api/internal/orchestrator/heartbeat"
	RouteServerCredentials = "/api/internal/servers/{id}/credentials"
	RouteVariable          = "/api/internal/variables/{userId}/{key}"
	RouteExecutionContext  = "/api/internal/executions/{id}/context"
)

// Client calls the backend's internal API. It is safe for concurrent use.
//
// Every call is bounded by ctx, by Options.RequestTimeout per attempt and by
// Options.RetryMaxElapsed in total (Options.ScriptCallMaxElapsed for the
// calls a user's script waits on). Errors are *APIError (the backend
// answered non-2xx), *TransportError (no answer), or a local refusal that
// sent nothing.
type Client struct {
	base       string
	token      secret.Value
	orchID     string
	http       *http.Client
	timeout    time.Duration
	maxElapsed time.Duration
	scriptMax  time.Duration // total budget of a call a script waits on
	obs        Observer
	// unsure holds the ids (string → time.Time) of jobs whose last
	// terminal update or release ended in doubt, with when the check may
	// first be made: see callOnce and InDoubt.
	unsure sync.Map
	// newBackOff is replaceable so that tests need not wait for real
	// back-off intervals.
	newBackOff func() backoff.BackOff
	lastOK     atomic.Int64 // unix ns of the last 2xx answer (see AnsweredSince)
}

// AnsweredSince says whether the backend answered a call with success
// at t or later: it was reachable then, with our token.
func (c *Client) AnsweredSince(t time.Time) bool { return c.lastOK.Load() >= t.UnixNano() }

// New checks opts and returns a Client. It starts nothing.
func New(opts Options) (*Client, error) {
	var problems []error
	u, err := url.Parse(opts.BaseURL)
	switch {
	case err != nil:
		problems = append(problems, fmt.Errorf("base URL: %w", err))
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		problems = append(problems, fmt.Errorf("base URL %q: want http(s)://host[:port]", opts.BaseURL))
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "":
		problems = append(problems, fmt.Errorf("base URL %q: want a bare origin, without path or query", opts.BaseURL))
	}
	if !opts.Token.IsSet() {
		problems = append(problems, errors.New("token is empty"))
	}
	if opts.OrchestratorID == "" {
		problems = append(problems, errors.New("orchestrator id is empty"))
	}
	if opts.RequestTimeout < 0 || opts.RetryMaxElapsed < 0 || opts.ScriptCallMaxElapsed < 0 {
		problems = append(problems, errors.New("timeouts must not be negative"))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("backend: new client: %w", errors.Join(problems...))
	}
	c := &Client{
		base:       u.Scheme + "://" + u.Host,
		token:      opts.Token,
		orchID:     opts.OrchestratorID,
		http:       opts.HTTPClient,
		timeout:    opts.RequestTimeout,
		maxElapsed: opts.RetryMaxElapsed,
		scriptMax:  opts.ScriptCallMaxElapsed,
		obs:        opts.Observer,
		newBackOff: defaultBackOff,
	}
	if c.http == nil {
		// No Client.Timeout: every attempt has its own context deadline.
		c.http = &http.Client{Transport: newTransport()}
	}
	if c.timeout == 0 {
		c.timeout = DefaultRequestTimeout
	}
	if c.maxElapsed == 0 {
		c.maxElapsed = DefaultRetryMaxElapsed
	}
	if c.scriptMax == 0 {
		c.scriptMax = DefaultScriptCallMaxElapsed
	}
	if c.obs == nil {
		c.obs = nopObserver{}
	}
	return c, nil
}

func defaultBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 250 * time.Millisecond
	b.MaxInterval = 15 * time.Second
	return b
}

type nopObserver struct{}

func (nopObserver) ObserveRequest(string, string, int, time.Duration) {}
func (nopObserver) ObserveRetry(string)                               {}

// jobPath fills a route template with an escaped id.
func jobPath(route, id string) string {
	return strings.Replace(route, "{id}", url.PathEscape(id), 1)
}

// Format prints the client without its token, whatever the verb: fmt
// cannot reach secret.Value's own redaction through an unexported field.
func (c *Client) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "backend.Client{%s as %s}", c.base, c.orchID)
}

// idleConnsPerHost is how many idle connections to the backend are kept
// for reuse. The default transport keeps 2: a burst of calls from many
// jobs at once (each job makes several) then opened and closed a
// connection per call, a tenth of the CPU of a busy pipeline spent
// dialing, and sockets left in TIME_WAIT.
const idleConnsPerHost = 64

func newTransport() *http.Transport {
	t := &http.Transport{Proxy: http.ProxyFromEnvironment}
	if d, ok := http.DefaultTransport.(*http.Transport); ok { // unless a program replaced it
		t = d.Clone()
	}
	t.MaxIdleConnsPerHost = idleConnsPerHost
	t.MaxIdleConns = max(t.MaxIdleConns, idleConnsPerHost)
	return t
}
