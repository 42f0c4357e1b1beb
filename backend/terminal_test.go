package backend

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/orchestrator/internal/testenv"
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
		case <-time.After(testenv.Patience):
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
			c, _ := newTestClient(t, f, func(o *Options) {
				// Only the case whose first attempt times out on purpose
				// gets a short timeout (long enough for the request to
				// reach the server): an attempt outliving it on a loaded
				// machine would change the counts.
				if tt.firstFail == "timeout after apply" {
					o.RequestTimeout = time.Second
				}
			})
			if err := tt.call(t.Context(), c); err != nil {
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
	err := c.CompleteJob(t.Context(), "job_1", Completion{Status: StatusCompleted})
	if !errors.Is(err, ErrNotOwner) || completes != 1 {
		t.Fatalf("err = %v after %d completes, want ErrNotOwner after 1", err, completes)
	}
}

// The backend answers a duplicate execution id with a 500. Only after an
// attempt whose answer was lost does a 500 mean "created already".
func TestCreateExecutionDuplicateAfterAmbiguityIsSuccess(t *testing.T) {
	tests := []struct {
		name     string
		first    string // how the first attempt fails; later ones are served normally
		wantErr  bool
		attempts int // 0: more than 2 (still retrying at the third, when the test gives up)
	}{
		{"reset after create, then duplicate 500", "reset after create", false, 2},
		{"timeout after create, then duplicate 500", "timeout after create", false, 2},
		{"500 (not a duplicate), then created", "500", false, 2},
		{"500, 500 (not a duplicate)", "500 always", true, 0},
		{"500 after create, then duplicate 500", "500 after create", true, 0},
		{"400 is final", "400", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			created := map[string]bool{}
			attempts := 0
			// A client still retrying at the third attempt would go on
			// until its budget runs out; the test gives up there instead,
			// which does not depend on how fast the attempts are.
			ctx, giveUp := context.WithCancel(t.Context())
			defer giveUp()
			c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				attempts++
				if tt.attempts == 0 && attempts == 3 {
					giveUp()
				}
				if tt.first == "500 always" {
					writeJSON(w, 500, `{"error":"Internal server error","details":"connection terminated"}`)
					return
				}
				if created[r.URL.Path] {
					writeJSON(w, 500, `{"error":"Internal server error","details":"duplicate key"}`)
					return
				}
				if attempts == 1 {
					switch tt.first {
					case "500":
						writeJSON(w, 500, `{"error":"Internal server error","details":"connection terminated"}`)
						return
					case "400":
						writeJSON(w, 400, `{"error":"jobId required"}`)
						return
					}
				}
				created[r.URL.Path] = true
				if attempts == 1 {
					switch tt.first {
					case "reset after create":
						resetConn(t, w)
						return
					case "500 after create":
						writeJSON(w, 500, `{"error":"Internal server error"}`)
						return
					case "timeout after create":
						mu.Unlock()
						<-r.Context().Done()
						mu.Lock()
						return
					}
				}
				writeJSON(w, 200, `{"success":true}`)
			}), func(o *Options) {
				// Only the case whose first attempt times out on purpose
				// gets a short timeout (long enough for the request to
				// reach the server).
				if tt.first == "timeout after create" {
					o.RequestTimeout = time.Second
				}
			})
			err := c.CreateExecution(ctx, "exec_1", ExecutionCreate{JobID: "job_1"})
			mu.Lock()
			defer mu.Unlock()
			if (err != nil) != tt.wantErr || tt.attempts > 0 && attempts != tt.attempts || tt.attempts == 0 && attempts <= 2 {
				t.Fatalf("err = %v after %d attempts; want error %v after %d (0: more than 2)", err, attempts, tt.wantErr, tt.attempts)
			}
		})
	}
}

// The exactly-once guard outlives one call: a CompleteJob that ran out of
// retries after the backend applied it leaves the Client in doubt, and
// the caller's next CompleteJob for the job asks before sending.
func TestTerminalDoubtOutlivesTheCall(t *testing.T) {
	var mu sync.Mutex
	broken := true // every answer is lost
	status, terminals, acks := "running", 0, 0
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/api/internal/jobs/job_1/acknowledge" {
			acks++
			if broken {
				resetConn(t, w)
				return
			}
			b, _ := json.Marshal(map[string]any{"success": true, "job": map[string]any{"id": "job_1", "status": status}})
			writeJSON(w, 200, string(b))
			return
		}
		terminals++
		status = StatusCompleted
		if broken {
			resetConn(t, w)
			return
		}
		writeJSON(w, 200, `{"success":true}`)
	}), func(o *Options) { o.RetryMaxElapsed = 200 * time.Millisecond })
	complete := func() error {
		return c.CompleteJob(t.Context(), "job_1", Completion{Status: StatusCompleted})
	}

	if err := complete(); !IsAmbiguous(err) {
		t.Fatalf("first CompleteJob: %v, want an ambiguous error", err)
	}
	mu.Lock()
	broken, acks = false, 0
	mu.Unlock()
	if err := complete(); err != nil {
		t.Fatalf("second CompleteJob: %v", err)
	}
	mu.Lock()
	if terminals != 1 || acks != 1 {
		t.Fatalf("after the second call: %d terminal updates, %d acks; want 1 and 1", terminals, acks)
	}
	acks = 0
	mu.Unlock()

	// The success cleared the doubt: a further call goes straight out.
	if err := complete(); err != nil {
		t.Fatalf("third CompleteJob: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if terminals != 2 || acks != 0 {
		t.Fatalf("after the third call: %d terminal updates, %d acks; want 2 and 0", terminals, acks)
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
	if err := c.ReleaseJob(t.Context(), "job_1", "shutting down"); err != nil {
		t.Fatal(err)
	}
	if releases != 1 {
		t.Fatalf("%d releases sent, want 1", releases)
	}
}

// A completion an earlier process may have sent is checked for only once
// that process's request would have timed out: a slow backend may still
// apply it until then, after a check that said "not yet".
func TestInDoubtChecksAfterAnEarlierRequestWouldHaveTimedOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var mu sync.Mutex
	var calls []string
	var ackAt time.Time
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, path.Base(r.URL.Path))
		if strings.HasSuffix(r.URL.Path, "/acknowledge") {
			ackAt = time.Now()
			writeJSON(w, 200, `{"success":true,"job":{"id":"job_1","status":"running"}}`)
			return
		}
		writeJSON(w, 200, `{"success":true}`)
	}), func(o *Options) { o.RequestTimeout = timeout })

	doubted := time.Now()
	c.InDoubt("job_1")
	if err := c.CompleteJob(t.Context(), "job_1", Completion{Status: StatusCompleted}); err != nil {
		t.Fatalf("CompleteJob: %v", err)
	}
	mu.Lock()
	got, waited := strings.Join(calls, " "), ackAt.Sub(doubted)
	mu.Unlock()
	if got != "acknowledge complete" {
		t.Fatalf("calls %q, want the check, then the completion", got)
	}
	if waited < timeout {
		t.Errorf("the check came %v after the doubt, before the earlier request's timeout of %v", waited, timeout)
	}

	// A caller that gives up while the check waits is told why.
	c.InDoubt("job_2")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := c.CompleteJob(ctx, "job_2", Completion{Status: StatusCompleted}); !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "earlier call to settle") {
		t.Errorf("CompleteJob cut while waiting: %v", err)
	}
}
