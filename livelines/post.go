package livelines

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/cronium/orchestrator/backend"
)

// body is the request of POST /broadcast/log-line. logId is a number for
// Cronium (metadata.logId is its logs table's id); one that is not a
// number goes as the string it is.
type body struct {
	LogID  any    `json:"logId"`
	Line   string `json:"line"`
	Stream string `json:"stream"`
}

// rejectedError is a 4xx answer: the server is up and refused this line.
type rejectedError struct{ status string }

func (e *rejectedError) Error() string { return "refused: " + e.status }

func (s *Sender) post(ctx context.Context, l Line) error {
	var id any = l.LogID
	if n, err := strconv.ParseInt(l.LogID, 10, 64); err == nil {
		id = n
	}
	// The same text the backend gets in snapshots: NUL bytes and invalid
	// UTF-8 become U+FFFD.
	b, err := json.Marshal(body{LogID: id, Line: backend.SanitizeText(l.Text), Stream: l.Stream})
	if err != nil {
		return fmt.Errorf("encode live line: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("live line: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("live line: %w", err)
	}
	// Read the (short) answer to its end so the connection is kept alive.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		s.sent.Add(1)
		if s.opts.Observer != nil {
			s.opts.Observer.LiveLineSent(time.Since(l.Queued))
		}
		return nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests:
		return &rejectedError{status: resp.Status}
	default:
		return fmt.Errorf("live line: %s", resp.Status)
	}
}
