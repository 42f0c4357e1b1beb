package backend

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"
)

// fakeJob is a one-job backend that counts terminal updates, and whose
// first terminal request misbehaves as told.
type fakeJob struct {
	t         *testing.T
	firstFail string // how the first terminal attempt fails
	mu        sync.Mutex
	status    string
	terminals int // terminal updates applied
	attempts  int // terminal requests received
	acks      int
}

func (f *fakeJob) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/api/internal/jobs/job_1/acknowledge" {
		f.acks++
		b, _ := json.Marshal(map[string]any{"success": true, "job": map[string]any{"id": "job_1", "status": f.status}})
		writeJSON(w, 200, string(b))
		return
	}
	f.attempts++
	var body struct {
		Status string `json:"status"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	apply := func() {
		f.terminals++
		switch {
		case body.Status == "" || body.Status == StatusTimeout:
			f.status = StatusFailed
		default:
			f.status = body.Status
		}
	}
	if f.attempts > 1 {
		apply()
		writeJSON(w, 200, `{"success":true}`)
		return
	}
	switch f.firstFail {
	case "reset after apply":
		apply()
		resetConn(f.t, w)
	case "reset before apply":
		resetConn(f.t, w)
	case "500 after apply":
		apply()
		writeJSON(w, 500, `{"error":"Internal server error"}`)
	case "timeout after apply":
		apply()
		f.mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Second):
		}
		f.mu.Lock()
	case "429":
		writeJSON(w, 429, `{"error":"Too Many Requests"}`)
	default:
		apply()
		writeJSON(w, 200, `{"success":true}`)
	}
}

func TestTerminalCallsLandExactlyOnce(t *testing.T) {
	complete := func(status string) func(context.Context, *Client) error {
		return func(ctx context.Context, c *Client) error {
			return c.CompleteJob(ctx, "job_1", Completion{Status: status, ExitCode: 1})
		}
	}
	fail := func(ctx context.Context, c *Client) error { return c.FailJob(ctx, "job_1", "boom", 1) }
	statusFailed := func(ctx context.Context, c *Client) error {
		return c.UpdateJobStatus(ctx, "job_1", StatusFailed, StatusDetails{Error: "boom"})
	}
	tests := []struct {
		name          string
		initial       string
		firstFail     string
		call          func(context.Context, *Client) error
		wantTerminals int
		wantAttempts  int
		wantAcks      bool
	}{
		{"complete: reset after the backend applied it", "running", "reset after apply", complete(StatusFailed), 1, 1, true},
		{"complete: 500 after the backend applied it", "running", "500 after apply", complete(StatusCompleted), 1, 1, true},
		{"complete: timeout after the backend applied it", "running", "timeout after apply", complete(StatusTimeout), 1, 1, true},
		{"complete: reset before the backend applied it", "running", "reset before apply", complete(StatusFailed), 1, 2, true},
		{"complete: 429 is not ambiguous", "running", "429", complete(StatusFailed), 1, 2, false},
		{"complete: no failure", "running", "", complete(StatusCompleted), 1, 1, false},
		{"complete failed over a UI cancel: cancelled is not ours", "cancelled", "reset before apply", complete(StatusFailed), 1, 2, true},
		{"complete as cancelled: cancelled counts as landed", "cancelled", "reset before apply", complete(StatusCancelled), 0, 1, true},
		{"fail: reset after the backend applied it", "running", "reset after apply", fail, 1, 1, true},
		{"status failed: 500 after the backend applied it", "running", "500 after apply", statusFailed, 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeJob{t: t, firstFail: tt.firstFail, status: tt.initial}
			c, _ := newTestClient(t, f, func(o *Options) { o.RequestTimeout = 200 * time.Millisecond })
			if err := tt.call(context.Background(), c); err != nil {
				t.Fatalf("call: %v", err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.terminals != tt.wantTerminals || f.attempts != tt.wantAttempts || (f.acks > 0) != tt.wantAcks {
				t.Fatalf("terminal updates %d, attempts %d, acks %d; want %d, %d, acks %v",
					f.terminals, f.attempts, f.acks, tt.wantTerminals, tt.wantAttempts, tt.wantAcks)
			}
		})
	}
}

func TestTerminalAmbiguityThenNotOwnerStops(t *testing.T) {
	var mu sync.Mutex
	completes := 0
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/api/internal/jobs/job_1/acknowledge" {
			writeJSON(w, 403, `{"error":"Job not claimed by this orchestrator"}`)
			return
		}
		completes++
		resetConn(t, w)
	}))
	err := c.CompleteJob(context.Background(), "job_1", Completion{Status: StatusCompleted})
	if !errors.Is(err, ErrNotOwner) || completes != 1 {
		t.Fatalf("err = %v after %d completes, want ErrNotOwner after 1", err, completes)
	}
}

func TestCreateExecutionDuplicateAfterAmbiguityIsSuccess(t *testing.T) {
	tests := []struct {
		name     string
		first    func(http.ResponseWriter)
		wantErr  bool
		attempts int
	}{
		{"reset, then duplicate 500", func(w http.ResponseWriter) { resetConn(t, w) }, false, 2},
		{"400 is final", func(w http.ResponseWriter) { writeJSON(w, 400, `{"error":"jobId required"}`) }, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			created := map[string]bool{}
			attempts := 0
			c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				attempts++
				if created[r.URL.Path] {
					writeJSON(w, 500, `{"error":"Internal server error","details":"duplicate key"}`)
					return
				}
				created[r.URL.Path] = true
				if attempts == 1 {
					tt.first(w)
					return
				}
				writeJSON(w, 200, `{"success":true}`)
			}))
			err := c.CreateExecution(context.Background(), "exec_1", ExecutionCreate{JobID: "job_1"})
			if (err != nil) != tt.wantErr || attempts != tt.attempts {
				t.Fatalf("err = %v after %d attempts; want error %v after %d", err, attempts, tt.wantErr, tt.attempts)
			}
		})
	}
}

// A release that landed is not sent again: by then another orchestrator
// may hold the job, and a second release would take it away.
func TestReleaseIsNotRepeatedAfterItLanded(t *testing.T) {
	var mu sync.Mutex
	owner, releases := testOrch, 0
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/api/internal/jobs/job_1/acknowledge" {
			if owner != testOrch {
				writeJSON(w, 403, `{"error":"Job not claimed by this orchestrator"}`)
				return
			}
			writeJSON(w, 200, `{"success":true,"job":{"id":"job_1","status":"claimed"}}`)
			return
		}
		releases++
		owner = ""
		if releases == 1 {
			resetConn(t, w)
			return
		}
		writeJSON(w, 200, `{"success":true}`)
	}))
	if err := c.ReleaseJob(context.Background(), "job_1", "shutting down"); err != nil {
		t.Fatal(err)
	}
	if releases != 1 {
		t.Fatalf("%d releases sent, want 1", releases)
	}
}
