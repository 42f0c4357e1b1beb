package embedded

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

// Each quirk of the page, on the wire.
func TestInternalAPIQuirks(t *testing.T) {
	e := newEnv(t)
	job := e.submit(bashJob("true"))
	e.claim("o1", 1)
	if st, _ := e.raw("POST", "/api/internal/executions/exec_dup/create", `{"jobId":"`+job+`"}`, nil); st != 200 {
		t.Fatalf("create execution: %d", st)
	}
	noToken := map[string]string{"Authorization": ""}
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		headers map[string]string
		status  int
		errText string // substring of the body's "error"
	}{
		{"no token", "GET", "/api/internal/jobs/queue", "", noToken, 401, "Unauthorized"},
		{"wrong token", "POST", "/api/internal/jobs/{job}/complete", "{}", map[string]string{"Authorization": "Bearer nope"}, 401, "Unauthorized"},
		{"auth before body", "POST", "/api/internal/jobs/{job}/complete", "", noToken, 401, "Unauthorized"},
		{"empty body on POST", "POST", "/api/internal/jobs/{job}/complete", "", nil, 500, "Internal server error"},
		{"empty body on PUT", "PUT", "/api/internal/jobs/{job}/status", "", nil, 500, "Internal server error"},
		{"invalid JSON", "POST", "/api/internal/jobs/{job}/release", "{", nil, 500, "Internal server error"},
		{"empty body on heartbeat", "POST", "/api/internal/orchestrator/heartbeat", "", nil, 500, "Internal server error"},
		{"queue without orchestrator id", "GET", "/api/internal/jobs/queue", "", map[string]string{"X-Orchestrator-ID": ""}, 400, "Orchestrator ID required"},
		{"orphaned without ?orchestratorId (the header does not count)", "GET", "/api/internal/jobs/orphaned", "", nil, 400, "Orchestrator ID required"},
		{"credentials without orchestrator id", "GET", "/api/internal/servers/1/credentials", "", map[string]string{"X-Orchestrator-ID": ""}, 400, "Orchestrator ID required"},
		{"credentials unknown server", "GET", "/api/internal/servers/999/credentials", "", nil, 404, "Server not found"},
		{"ack by another orchestrator", "POST", "/api/internal/jobs/{job}/acknowledge", `{"orchestratorId":"o2"}`, nil, 403, "not claimed by this orchestrator"},
		{"ack unknown job", "POST", "/api/internal/jobs/job_nope/acknowledge", `{"orchestratorId":"o1"}`, nil, 404, "Job not found"},
		{"ack without orchestratorId", "POST", "/api/internal/jobs/{job}/acknowledge", `{}`, nil, 400, "Orchestrator ID required"},
		{"status claimed refused", "PUT", "/api/internal/jobs/{job}/status", `{"status":"claimed"}`, nil, 400, "Invalid status transition"},
		{"status timeout refused", "PUT", "/api/internal/jobs/{job}/status", `{"status":"timeout"}`, nil, 400, "Invalid status transition"},
		{"status missing", "PUT", "/api/internal/jobs/{job}/status", `{}`, nil, 400, "Status required"},
		{"details.error not a string", "PUT", "/api/internal/jobs/{job}/status", `{"status":"failed","details":{"error":{"code":1}}}`, nil, 500, "Internal server error"},
		{"fail with empty error", "POST", "/api/internal/jobs/{job}/fail", `{"error":"","exitCode":1}`, nil, 400, "Error message required"},
		{"fail without error", "POST", "/api/internal/jobs/{job}/fail", `{"exitCode":1}`, nil, 400, "Error message required"},
		{"complete unknown job", "POST", "/api/internal/jobs/job_nope/complete", `{"status":"completed"}`, nil, 404, "Job not found"},
		{"duplicate execution id", "POST", "/api/internal/executions/exec_dup/create", `{"jobId":"{job}"}`, nil, 500, "Internal server error"},
		{"execution id over 100 chars", "POST", "/api/internal/executions/" + strings.Repeat("x", 101) + "/create", `{"jobId":"{job}"}`, nil, 500, "Internal server error"},
		{"execution for unknown job", "POST", "/api/internal/executions/exec_orphan/create", `{"jobId":"job_nope"}`, nil, 500, "Internal server error"},
		{"update unknown execution", "PUT", "/api/internal/executions/exec_nope/update", `{}`, nil, 404, "Execution not found"},
		{"NUL in output", "POST", "/api/internal/jobs/{job}/complete", `{"status":"completed","output":{"stdout":"a\u0000b","stderr":""}}`, nil, 500, `invalid byte sequence for encoding "UTF8"`},
		{"NUL in snapshot", "PUT", "/api/internal/executions/exec_dup/update", `{"output":"x\u0000"}`, nil, 500, `invalid byte sequence for encoding "UTF8"`},
		{"invalid UTF-8", "POST", "/api/internal/jobs/{job}/fail", "{\"error\":\"bad \xff byte\"}", nil, 500, `invalid byte sequence for encoding "UTF8"`},
		{"batchSize not a number", "GET", "/api/internal/jobs/queue?batchSize=x", "", nil, 500, "Internal server error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := strings.ReplaceAll(tt.path, "{job}", job)
			body := strings.ReplaceAll(tt.body, "{job}", job)
			st, resp := e.raw(tt.method, path, body, tt.headers)
			msg, _ := resp["error"].(string)
			if st != tt.status || !strings.Contains(msg, tt.errText) {
				t.Fatalf("%s %s = %d %v, want %d with error %q", tt.method, path, st, resp, tt.status, tt.errText)
			}
		})
	}
	// None of the refused calls changed the job.
	if v := e.job(job); v.Status != "claimed" || v.TerminalUpdates != 0 {
		t.Fatalf("job after refused calls: %s, %d terminal updates", v.Status, v.TerminalUpdates)
	}
}

func TestAcceptedOrchestratorCalls(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		method, path, body string
		status             int
		key, value         string
	}{
		{"GET", "/api/internal/orchestrator/health", "", 200, "status", "healthy"},
		{"POST", "/api/internal/orchestrator/health", `{"orchestratorId":"o1"}`, 200, "", ""},
		{"POST", "/api/internal/orchestrator/heartbeat", `{"orchestratorId":"o1","activeJobs":3}`, 200, "", ""},
	}
	for _, tt := range tests {
		st, resp := e.raw(tt.method, tt.path, tt.body, nil)
		if st != tt.status || tt.key != "" && resp[tt.key] != tt.value {
			t.Errorf("%s %s = %d %v", tt.method, tt.path, st, resp)
		}
	}
}

// readBody walks a body for NUL only when it has the escape \u0000; these
// pin that the shortcut refuses and accepts what a full walk would.
func TestReadBody(t *testing.T) {
	tests := []struct {
		name, body string
		want       error // nil: accepted; errOther: refused otherwise
	}{
		{"object", `{"a":"x"}`, nil},
		{"null", `null`, nil},
		{"escaped backslash before u0000 is no NUL", `{"a":"\\u0000"}`, nil},
		{"NUL in an unknown nested field", `{"x":[{"y":"a\u0000"}]}`, errInvalidText},
		{"NUL in a key", `{"k\u0000":1}`, errInvalidText},
		{"invalid UTF-8 outside strings", "{\"a\":1}\xff", errInvalidText},
		{"empty", ``, errBadBody},
		{"broken", `{"a":`, errBadBody},
		{"broken with a NUL", `{"a":"\u0000"`, errBadBody},
		{"not an object", `["a"]`, errOther},
		{"wrong type", `{"status":1}`, errOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var into struct {
				Status string `json:"status"`
			}
			for _, target := range []any{&into, nil} {
				err := readBody(httptest.NewRequest("POST", "/", strings.NewReader(tt.body)), target)
				if target == nil && tt.name == "wrong type" {
					continue // nothing to decode into
				}
				switch {
				case tt.want == errOther && (err == nil || errors.Is(err, errInvalidText) || errors.Is(err, errBadBody)),
					tt.want != errOther && !errors.Is(err, tt.want):
					t.Fatalf("readBody(%q, %T) = %v, want %v", tt.body, target, err, tt.want)
				}
			}
		})
	}
}

var errOther = errors.New("another refusal")
