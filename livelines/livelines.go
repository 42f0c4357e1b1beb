// Package livelines sends jobs' output lines, as they are printed, to
// Cronium's Socket.IO server (POST /broadcast/log-line, one line per
// request, unauthenticated), which shows them live in the browser.
//
// It is best effort and never in the way of a job: Send never blocks, the
// lines wait in bounded queues (the oldest are dropped, and counted, when
// the server is down or slow), and failed requests are not retried. The
// authoritative output still reaches the backend in the job's snapshots
// and its /complete.
package livelines

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cronium/orchestrator/output"
)

// Path is the route of the live-lines server that takes one line.
const Path = "/broadcast/log-line"

// Line is one line of a job's output.
type Line struct {
	LogID  string // the job's metadata.logId
	Stream string // "stdout" or "stderr"
	Text   string // without its newline, masked
	// Queued is when Send took it (the latency of live lines is measured
	// from there).
	Queued time.Time
}

// Drop reasons (the label of the dropped-lines counter).
const (
	DropOverflow = "overflow" // the queue was full: the server is down or slower than the output
	DropFailed   = "failed"   // the request failed: no answer, or a 5xx
	DropRejected = "rejected" // the server refused the line (4xx)
)

// DropReasons lists every reason a line is dropped.
var DropReasons = []string{DropOverflow, DropFailed, DropRejected}

// Observer counts lines (for metrics). Its methods must not block.
type Observer interface {
	LiveLineSent(latency time.Duration)
	LiveLinesDropped(reason string, n int)
}

// Options configure a Sender. Zero values take the defaults.
type Options struct {
	// URL is the server's origin, e.g. http://127.0.0.1:5002; lines are
	// posted to URL + Path.
	URL string
	// Workers send at once, each over its own kept-alive connection; the
	// lines of one job always go through the same worker, in order.
	// Default 4.
	Workers int
	// QueueBytes bounds the lines waiting, all workers together (text
	// bytes plus a small overhead per line). Default 4 MiB.
	QueueBytes int
	// Timeout bounds one request. Default 2s.
	Timeout time.Duration
	// MaxBackoff is the longest pause of a worker after failed requests
	// (the first pause is 100ms, doubled per failure in a row). Default 5s.
	MaxBackoff time.Duration
	Observer   Observer     // nil: none
	Logger     *slog.Logger // nil: slog.Default()
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
}

// Sender sends lines. Send and ForJob are safe for concurrent use; Run is
// called once, by the Sender's owner. New starts nothing.
type Sender struct {
	endpoint string
	opts     Options
	client   *http.Client
	log      *slog.Logger
	queues   []*queue

	sent    atomic.Int64
	dropped [3]atomic.Int64 // by DropReasons
}

// perLineOverhead is what a queued line costs beyond its text.
const perLineOverhead = 64

// New returns a Sender to the server at o.URL.
func New(o Options) (*Sender, error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("live lines: want an http(s) origin such as http://127.0.0.1:5002, got %q", o.URL)
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 4 << 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	tr := o.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = o.Workers
		t.ResponseHeaderTimeout = o.Timeout
		tr = t
	}
	s := &Sender{endpoint: strings.TrimRight(o.URL, "/") + Path, opts: o, log: o.Logger.With("component", "livelines"),
		client: &http.Client{Transport: tr, Timeout: o.Timeout}}
	per := max(o.QueueBytes/o.Workers, output.MaxLineBytes+perLineOverhead)
	for range o.Workers {
		s.queues = append(s.queues, newQueue(per))
	}
	return s, nil
}

// Endpoint is where lines are posted.
func (s *Sender) Endpoint() string { return s.endpoint }

// Send queues a line and returns at once. A full queue drops its oldest
// lines to make room (counted as DropOverflow).
func (s *Sender) Send(l Line) {
	if l.Queued.IsZero() {
		l.Queued = time.Now()
	}
	h := fnv.New32a()
	h.Write([]byte(l.LogID))
	q := s.queues[h.Sum32()%uint32(len(s.queues))]
	if n := q.push(l); n > 0 {
		s.drop(DropOverflow, n)
	}
}

// ForJob is the sink of one job's output log: its lines go out under
// logID (the job's metadata.logId). An empty logID names no live view:
// the sink is nil then.
func (s *Sender) ForJob(logID string) output.LineSink {
	if s == nil || logID == "" {
		return nil
	}
	return jobSink{s: s, logID: logID}
}

type jobSink struct {
	s     *Sender
	logID string
}

func (j jobSink) Line(st output.Stream, text string) {
	j.s.Send(Line{LogID: j.logID, Stream: st.String(), Text: text})
}

// Stats are the Sender's counters.
type Stats struct {
	Sent    int64
	Dropped map[string]int64 // by reason
	Queued  int              // lines waiting now
}

// DroppedTotal is the lines dropped for any reason.
func (st Stats) DroppedTotal() int64 {
	var n int64
	for _, v := range st.Dropped {
		n += v
	}
	return n
}

func (s *Sender) Stats() Stats {
	st := Stats{Sent: s.sent.Load(), Dropped: map[string]int64{}}
	for i, r := range DropReasons {
		st.Dropped[r] = s.dropped[i].Load()
	}
	for _, q := range s.queues {
		st.Queued += q.len()
	}
	return st
}

func (s *Sender) drop(reason string, n int) {
	for i, r := range DropReasons {
		if r == reason {
			s.dropped[i].Add(int64(n))
		}
	}
	if s.opts.Observer != nil {
		s.opts.Observer.LiveLinesDropped(reason, n)
	}
}

// drainTimeout bounds the last sends once Run's context ended: lines a
// job printed just before a shutdown still go out, if the server answers.
const drainTimeout = time.Second

// Run sends queued lines until ctx ends, then sends what is left for at
// most a second and returns once every worker has stopped.
func (s *Sender) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, q := range s.queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(ctx, q)
		}()
	}
	wg.Wait()
	if t, ok := s.client.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// work is one worker: it takes the lines queued so far as one batch and
// posts them one by one, in order, over a kept-alive connection. After a
// failed request it puts the rest back and pauses: meanwhile the queue
// drops its oldest lines, so what is sent once the server answers again
// is the latest output, and memory stays bounded.
func (s *Sender) work(ctx context.Context, q *queue) {
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			s.drain(context.WithoutCancel(ctx), q)
			return
		case <-q.wake:
		}
		for batch := q.take(); len(batch) > 0; batch = q.take() {
			rest, err := s.sendBatch(ctx, batch)
			if n := q.requeue(rest); n > 0 {
				s.drop(DropOverflow, n)
			}
			if ctx.Err() != nil {
				break // to the drain
			}
			if err == nil {
				backoff = 0
				continue
			}
			if backoff = s.pause(err, backoff); !sleep(ctx, backoff) {
				break
			}
		}
	}
}

// sendBatch posts the lines of batch in order until one fails for want
// of a server (err) or ctx ends, and returns the lines not sent: the
// failed one is counted and left out. A line the server refuses is
// counted and passed over.
func (s *Sender) sendBatch(ctx context.Context, batch []Line) (rest []Line, err error) {
	for i, l := range batch {
		if ctx.Err() != nil {
			return batch[i:], nil
		}
		err := s.post(ctx, l)
		var rej *rejectedError
		switch {
		case err == nil:
		case ctx.Err() != nil: // cut by the shutdown: the drain tries it again
			return batch[i:], nil
		case errors.As(err, &rej):
			s.drop(DropRejected, 1)
			s.log.Debug("live line refused", "log_id", l.LogID, "err", err)
		default:
			s.drop(DropFailed, 1)
			return batch[i+1:], err
		}
	}
	return nil, nil
}

// drain sends what is left, for at most drainTimeout, giving up at the
// first failure (the server is not answering: the rest would wait for
// the timeout each).
func (s *Sender) drain(ctx context.Context, q *queue) {
	ctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	batch := q.take()
	for i, l := range batch {
		if err := s.post(ctx, l); err != nil {
			s.drop(DropFailed, len(batch)-i)
			return
		}
	}
}

// pause is how long a worker waits after a failed request: 100ms, then
// doubling per failure in a row up to MaxBackoff.
func (s *Sender) pause(err error, backoff time.Duration) time.Duration {
	if backoff == 0 {
		s.log.Warn("could not send a live line; lines are dropped until the server answers", "url", s.endpoint, "err", err)
		return 100 * time.Millisecond
	}
	return min(2*backoff, s.opts.MaxBackoff)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
