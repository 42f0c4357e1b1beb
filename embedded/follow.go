package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// followMaxFailures is how many polls in a row may fail before Follow
// gives up: a restarting server should not end a long follow.
const followMaxFailures = 5

// Follow writes the job's output to stdout and stderr as it comes and
// returns the job's view once it is terminal (completed, failed or
// cancelled). Each request after the first is held by the server until
// the output changes (OutputAfter, up to followWait): what the server has
// is printed at once, and a quiet job costs a request per followWait.
// Against a server without versions (or after an answer that brought no
// change) the next request waits interval.
//
// Snapshots are whole strings that normally grow as prefixes of each
// other; when one does not (a head/tail truncation marker appeared, or
// the final output differs from the snapshots), Follow resynchronises
// rather than printing everything again (see resync).
func (c *PublicClient) Follow(ctx context.Context, id string, interval time.Duration, stdout, stderr io.Writer) (JobView, error) {
	if interval <= 0 {
		interval = time.Second
	}
	var out, errs stream
	var seen int64 // the last answer's version; 0: none yet, or a server without versions
	failures := 0
	for {
		var o OutputView
		var err error
		if seen > 0 {
			o, err = c.OutputAfter(ctx, id, seen, followWait)
		} else {
			o, err = c.Output(ctx, id)
		}
		pause := interval
		switch {
		case err == nil:
			failures = 0
			if err := out.show(stdout, o.Stdout); err != nil {
				return JobView{}, err
			}
			if err := errs.show(stderr, o.Stderr); err != nil {
				return JobView{}, err
			}
			if o.Final {
				return c.Job(ctx, id)
			}
			if o.Version > 0 && o.Version != seen {
				pause = 0 // the next request is held until the next change
			}
			seen = o.Version
		case errors.Is(err, ErrJobNotFound) || ctx.Err() != nil:
			return JobView{}, err
		default:
			if failures++; failures >= followMaxFailures {
				return JobView{}, fmt.Errorf("follow %s: %w", id, err)
			}
		}
		if err := sleep(ctx, pause); err != nil {
			return JobView{}, err
		}
	}
}

// sleep waits d (0: not at all) unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// stream is what Follow printed of one output stream: the last snapshot
// seen, all of which has been shown.
type stream struct{ shown string }

func (s *stream) show(w io.Writer, cur string) error {
	if cur == s.shown {
		return nil
	}
	next := resync(s.shown, cur)
	s.shown = cur
	if next == "" {
		return nil
	}
	if _, err := io.WriteString(w, next); err != nil {
		return fmt.Errorf("follow: write output: %w", err)
	}
	return nil
}

// How much of the end of what was shown is looked for in a rewritten
// snapshot: at most anchorLen bytes, and at least minAnchorLen, since a
// short one matches by chance.
const (
	anchorLen    = 256
	minAnchorLen = 16
)

// resync returns what to print so that the reader sees cur, having seen
// prev. If cur extends prev, just the extension. Otherwise cur was
// rewritten: a truncation marker replaced a middle part, or the final
// output differs from the snapshots. Then, if the end of prev is found in
// cur after their common prefix, what follows it (the longest end that is
// found: a long one is less likely to match by chance); if not, cur from
// the start of the line where it departs from prev (the marker line, then
// the tail), on a new line.
func resync(prev, cur string) string {
	if strings.HasPrefix(cur, prev) {
		return cur[len(prev):]
	}
	p := commonPrefix(prev, cur)
	for n := anchorLen; n >= minAnchorLen; n /= 2 {
		anchor := prev[max(p, len(prev)-n):]
		if len(anchor) < minAnchorLen {
			break
		}
		if i := strings.Index(cur[p:], anchor); i >= 0 {
			return cur[p+i+len(anchor):]
		}
	}
	start := strings.LastIndexByte(cur[:p], '\n') + 1
	rest := cur[start:]
	if prev != "" && !strings.HasSuffix(prev, "\n") && !strings.HasPrefix(rest, "\n") {
		rest = "\n" + rest
	}
	return rest
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
