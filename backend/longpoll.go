package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Long polling is an extension of the queue route that the embedded
// backend implements and the real Cronium backend does not (yet):
//
//   - GET /api/internal/jobs/queue?batchSize=N&wait=S asks the backend to
//     hold the request until a job is claimable or S seconds (a decimal
//     number, e.g. 25 or 0.5) have passed, then to answer as usual; an
//     empty answer after the wait is the normal {"jobs":[],"count":0}.
//   - A backend that holds polls says so on every queue answer with the
//     header HeaderLongPoll, whose value is the longest wait it holds, in
//     seconds (the embedded backend's: 30).
//
// The real backend ignores unknown query parameters and sends no such
// header: a poll with wait is answered at once, and the client sends wait
// only once an earlier answer carried the header.
const (
	HeaderLongPoll = "X-Cronium-Long-Poll"
	QueryWait      = "wait"
)

// Bounds of the wait a client asks for.
const (
	// MaxLongPollWait is the longest wait asked for: an idle poller
	// polls about once a minute, and a held request stays under the
	// 60 s that proxies commonly allow an idle one.
	MaxLongPollWait = 50 * time.Second
	// longPollMargin is left between the wait and the request timeout,
	// for the backend's claim, the answer's trip and a loaded machine.
	longPollMargin = 5 * time.Second
	// minLongPollWait: a shorter wait (a request timeout of less than
	// 6s) is not worth holding a request for; polls are not held then.
	minLongPollWait = time.Second
)

// LongPollWait is the wait a client whose requests time out after
// requestTimeout, whatever they are, asks for (Poll extends its own
// attempt's timeout instead): MaxLongPollWait, but always longPollMargin
// (5s) below the timeout, so that a held poll is never cut by it; 0 (do
// not hold polls) when that leaves less than a second.
func LongPollWait(requestTimeout time.Duration) time.Duration {
	w := min(MaxLongPollWait, requestTimeout-longPollMargin)
	if w < minLongPollWait {
		return 0
	}
	return w
}

// Polled is the answer of a poll.
type Polled struct {
	Jobs []Job
	// MaxWait is the longest wait the backend holds a poll for, as its
	// answer announced (HeaderLongPoll); 0: it answers polls at once.
	MaxWait time.Duration
}

// Poll is PollJobs asking the backend to hold the request for up to wait
// until a job is claimable (0: answer at once). The wait is cut to
// MaxLongPollWait, and the attempt may take the wait and a margin beyond
// it, whatever the request timeout. A backend that does not hold polls
// answers at once all the same; its answer's MaxWait is 0.
//
// As with PollJobs, the claim is committed before the backend answers:
// a poll cancelled while held may have claimed jobs whose answer is lost
// (OrphanedJobs finds them).
func (c *Client) Poll(ctx context.Context, batchSize int, wait time.Duration) (Polled, error) {
	if batchSize < 1 {
		return Polled{}, fmt.Errorf("backend: poll: batch size %d, want at least 1", batchSize)
	}
	q := url.Values{"batchSize": {strconv.Itoa(batchSize)}}
	if wait = min(wait, MaxLongPollWait); wait > 0 {
		q.Set(QueryWait, FormatWait(wait))
	}
	r, err := c.newRequest(http.MethodGet, RouteQueue, "", q, nil)
	if err != nil {
		return Polled{}, err
	}
	if wait > 0 {
		r.timeout = wait + longPollMargin // the request timeout is for answers given at once
	}
	var p Polled
	r.answered = func(h http.Header) { p.MaxWait = ParseLongPoll(h.Get(HeaderLongPoll)) }
	var resp struct {
		Jobs []json.RawMessage `json:"jobs"`
	}
	if err := c.call(ctx, r, &resp); err != nil {
		return Polled{}, err
	}
	p.Jobs, err = decodeJobs(resp.Jobs)
	return p, err
}

// FormatWait writes a wait as the wait parameter carries it: seconds,
// with a fraction when needed ("25", "0.5").
func FormatWait(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// ParseLongPoll reads a HeaderLongPoll value: the longest wait in seconds.
// Absent, unreadable, zero or negative: 0, the backend does not hold polls.
func ParseLongPoll(v string) time.Duration {
	if v == "" {
		return 0
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || !(secs > 0) {
		return 0
	}
	return time.Duration(min(secs, time.Hour.Seconds()) * float64(time.Second))
}
