package backend

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string // substring of the error; "" = valid
	}{
		{"valid", Options{BaseURL: "http://localhost:5001", Token: "t", OrchestratorID: "o"}, ""},
		{"trailing slash ok", Options{BaseURL: "https://b.example/", Token: "t", OrchestratorID: "o"}, ""},
		{"path", Options{BaseURL: "http://b/api", Token: "t", OrchestratorID: "o"}, "bare origin"},
		{"scheme", Options{BaseURL: "localhost:5001", Token: "t", OrchestratorID: "o"}, "http(s)"},
		{"no token", Options{BaseURL: "http://b", OrchestratorID: "o"}, "token is empty"},
		{"no id", Options{BaseURL: "http://b", Token: "t"}, "orchestrator id is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("New: %v, want %q", err, tt.want)
			}
		})
	}
}

// TestWire checks every call as the backend sees it: method, path, query,
// headers and body.
func TestWire(t *testing.T) {
	one := 1
	ms := int64(1500)
	out := "so far"
	tests := []struct {
		name      string
		call      func(context.Context, *Client) error
		respond   string // 200 body
		method    string
		path      string
		query     string
		wantBody  map[string]any // subset of the decoded body; nil for GET
		timestamp bool           // body has an RFC3339Nano "timestamp"
	}{
		{
			name:    "poll",
			call:    func(ctx context.Context, c *Client) error { _, err := c.PollJobs(ctx, 3); return err },
			respond: `{"jobs":[],"count":0}`, method: "GET", path: "/api/internal/jobs/queue", query: "batchSize=3",
		},
		{
			name: "acknowledge",
			call: func(ctx context.Context, c *Client) error {
				row, err := c.Acknowledge(ctx, "job_1")
				if err == nil && row.Status != "cancelled" {
					return errors.New("status not decoded: " + row.Status)
				}
				return err
			},
			respond: `{"success":true,"job":{"id":"job_1","status":"cancelled"}}`,
			method:  "POST", path: "/api/internal/jobs/job_1/acknowledge",
			wantBody: map[string]any{"orchestratorId": testOrch}, timestamp: true,
		},
		{
			name: "status running",
			call: func(ctx context.Context, c *Client) error {
				return c.UpdateJobStatus(ctx, "job_1", StatusRunning, StatusDetails{})
			},
			respond: `{"success":true}`, method: "PUT", path: "/api/internal/jobs/job_1/status",
			wantBody: map[string]any{"status": "running", "details": map[string]any{}}, timestamp: true,
		},
		{
			name: "status failed details",
			call: func(ctx context.Context, c *Client) error {
				return c.UpdateJobStatus(ctx, "job_1", StatusFailed, StatusDetails{Message: "m", ExitCode: &one, Error: "boom\x00"})
			},
			respond: `{"success":true}`, method: "PUT", path: "/api/internal/jobs/job_1/status",
			wantBody:  map[string]any{"status": "failed", "details": map[string]any{"message": "m", "exitCode": 1.0, "error": "boom\uFFFD"}},
			timestamp: true,
		},
		{
			name: "complete",
			call: func(ctx context.Context, c *Client) error {
				return c.CompleteJob(ctx, "job_1", Completion{Status: StatusCompleted, ExitCode: 0,
					Output: CompletionOutput{Stdout: "a\x00b", Stderr: "<&>"}, ScriptOutput: json.RawMessage(`{"k":"v\u0000"}`)})
			},
			respond: `{"success":true}`, method: "POST", path: "/api/internal/jobs/job_1/complete",
			wantBody: map[string]any{"status": "completed", "exitCode": 0.0,
				"output": map[string]any{"stdout": "a\uFFFDb", "stderr": "<&>"}, "scriptOutput": map[string]any{"k": "v\uFFFD"}},
			timestamp: true,
		},
		{
			name:    "fail",
			call:    func(ctx context.Context, c *Client) error { return c.FailJob(ctx, "job_1", "no image", 125) },
			respond: `{"success":true}`, method: "POST", path: "/api/internal/jobs/job_1/fail",
			wantBody: map[string]any{"error": "no image", "exitCode": 125.0}, timestamp: true,
		},
		{
			name:    "release",
			call:    func(ctx context.Context, c *Client) error { return c.ReleaseJob(ctx, "job_1", "shutting down") },
			respond: `{"success":true}`, method: "POST", path: "/api/internal/jobs/job_1/release",
			wantBody: map[string]any{"message": "shutting down"},
		},
		{
			name: "orphaned",
			call: func(ctx context.Context, c *Client) error {
				rows, err := c.OrphanedJobs(ctx)
				if err == nil && (len(rows) != 1 || rows[0].Status != "running" || rows[0].StartedAt == nil) {
					return errors.New("rows not decoded")
				}
				return err
			},
			respond: `[{"id":"job_1","status":"running","orchestratorId":"orch-1","startedAt":"2025-10-22T14:03:11.512Z","payload":{}}]`,
			method:  "GET", path: "/api/internal/jobs/orphaned", query: "orchestratorId=orch-1",
		},
		{
			name: "execution create",
			call: func(ctx context.Context, c *Client) error {
				return c.CreateExecution(ctx, "exec_job_1_1", ExecutionCreate{JobID: "job_1", ServerID: "3", ServerName: "web-01"})
			},
			respond: `{"success":true}`, method: "POST", path: "/api/internal/executions/exec_job_1_1/create",
			wantBody: map[string]any{"jobId": "job_1", "serverId": "3", "serverName": "web-01"},
		},
		{
			name: "execution update ms",
			call: func(ctx context.Context, c *Client) error {
				return c.UpdateExecution(ctx, "exec_1", ExecutionUpdate{Output: &out, TotalDuration: &ms, Status: StatusRunning})
			},
			respond: `{"success":true}`, method: "PUT", path: "/api/internal/executions/exec_1/update",
			wantBody: map[string]any{"output": "so far", "totalDuration": 1500.0, "status": "running"},
		},
		{
			name: "execution update empty is {}",
			call: func(ctx context.Context, c *Client) error {
				return c.UpdateExecution(ctx, "exec_1", ExecutionUpdate{})
			},
			respond: `{"success":true}`, method: "PUT", path: "/api/internal/executions/exec_1/update",
			wantBody: map[string]any{},
		},
		{
			name:    "health",
			call:    func(ctx context.Context, c *Client) error { return c.Health(ctx) },
			respond: `{"status":"healthy"}`, method: "GET", path: "/api/internal/orchestrator/health",
		},
		{
			name: "heartbeat",
			call: func(ctx context.Context, c *Client) error {
				return c.Heartbeat(ctx, Heartbeat{ActiveJobs: 2, Capacity: 5})
			},
			respond: `{}`, method: "POST", path: "/api/internal/orchestrator/heartbeat",
			wantBody: map[string]any{"orchestratorId": testOrch, "activeJobs": 2.0, "capacity": 5.0}, timestamp: true,
		},
		{
			name: "credentials",
			call: func(ctx context.Context, c *Client) error {
				d, err := c.ServerCredentials(ctx, "3")
				if err == nil && (d.Host != "10.0.0.21" || d.PrivateKey != "-----BEGIN-----\nk\n-----END-----\n") {
					return errors.New("credentials not decoded")
				}
				return err
			},
			respond: `{"server":{"id":3,"name":"web-01","address":"10.0.0.21","port":22,"username":"deploy","privateKey":"-----BEGIN-----\nk\n-----END-----\n"}}`,
			method:  "GET", path: "/api/internal/servers/3/credentials",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, tt.respond)
			}))
			if err := tt.call(t.Context(), c); err != nil {
				t.Fatalf("call: %v", err)
			}
			reqs := rec.all()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			checkRequest(t, reqs[0], tt.method, tt.path, tt.query)
			if tt.method == "GET" {
				if len(reqs[0].Body) != 0 {
					t.Errorf("GET with body %q", reqs[0].Body)
				}
				return
			}
			var body map[string]any
			if err := json.Unmarshal(reqs[0].Body, &body); err != nil {
				t.Fatalf("body %q is not a JSON object: %v", reqs[0].Body, err)
			}
			for k, want := range tt.wantBody {
				if !reflect.DeepEqual(body[k], want) {
					t.Errorf("body[%q] = %#v, want %#v", k, body[k], want)
				}
			}
			if tt.timestamp {
				ts, _ := body["timestamp"].(string)
				if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
					t.Errorf("timestamp %q: %v", ts, err)
				}
			}
		})
	}
}

func checkRequest(t *testing.T, r recorded, method, path, query string) {
	t.Helper()
	if r.Method != method || r.Path != path || r.RawQuery != query {
		t.Errorf("request %s %s?%s, want %s %s?%s", r.Method, r.Path, r.RawQuery, method, path, query)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
		t.Errorf("Authorization = %q", got)
	}
	if got := r.Header.Get("X-Orchestrator-ID"); got != testOrch {
		t.Errorf("X-Orchestrator-ID = %q", got)
	}
	if method != "GET" && r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type = %q", r.Header.Get("Content-Type"))
	}
}

func TestLocalRefusalsSendNothing(t *testing.T) {
	c, rec := newTestClient(t, http.NotFoundHandler())
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"terminal by status", func() error {
			return c.UpdateExecution(ctx, "e", ExecutionUpdate{Status: StatusCompleted})
		}, ErrTerminalUpdate},
		{"terminal by failed", func() error {
			return c.UpdateExecution(ctx, "e", ExecutionUpdate{Status: StatusFailed})
		}, ErrTerminalUpdate},
		{"terminal by completedAt", func() error {
			now := time.Now()
			return c.UpdateExecution(ctx, "e", ExecutionUpdate{CompletedAt: &now})
		}, ErrTerminalUpdate},
		{"empty fail text", func() error { return c.FailJob(ctx, "job_1", "", 1) }, ErrBadRequest},
		{"empty job id", func() error { return c.CompleteJob(ctx, "", Completion{}) }, ErrBadRequest},
		{"batch size 0", func() error { _, err := c.PollJobs(ctx, 0); return err }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("%d requests sent, want none", n)
	}
}
