package embedded

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/backend"
)

// The context route answers 404 until the execution exists, then the
// event (built from the job) and the user, through the orchestrator's
// client.
func TestExecutionContextRoute(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	req := SubmitRequest{Name: "Nightly report", UserID: "alice",
		Script: &backend.Script{Type: backend.ScriptPython, Content: "print('hi')\n"}}
	id := e.submit(req)
	e.claim("o1", 1)
	c := e.client("o1")
	if _, err := c.ExecutionContext(ctx, "exec_1"); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("before the execution exists: %v, want ErrNotFound", err)
	}
	if err := c.CreateExecution(ctx, "exec_1", backend.ExecutionCreate{JobID: id}); err != nil {
		t.Fatal(err)
	}
	raw, err := c.ExecutionContext(ctx, "exec_1")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"executionId":"exec_1","jobId":"` + id + `","eventId":1,"userId":"alice",
		"metadata":{"eventName":"Nightly report","triggeredBy":"manual","logId":1,"originalType":"SCRIPT","eventId":1,"userId":"alice"},
		"event":{"id":1,"name":"Nightly report","type":"PYTHON","content":"print('hi')\n","runLocation":"LOCAL","serverId":null},
		"user":{"id":"alice","email":null,"name":null}}`
	if !jsonEqual(t, raw, want) {
		t.Fatalf("context\n%s\nwant\n%s", raw, want)
	}
}

// An SSH job runs REMOTE on its server; the servers' credentials in its
// metadata never reach the script.
func TestExecutionContextOfSSHJob(t *testing.T) {
	e := newEnv(t)
	req := bashJob("uptime")
	req.Name = "Fleet"
	req.Servers = []ServerSpec{
		{Name: "web-01", Host: "10.0.0.21", Username: "deploy", PrivateKey: testKey},
		{Name: "web-02", Host: "10.0.0.22", Username: "deploy", Password: "pw-SECRET"},
	}
	id := e.submit(req)
	e.claim("o1", 1)
	if st, resp := e.raw("POST", "/api/internal/executions/exec_s/create", `{"jobId":"`+id+`"}`, nil); st != 200 {
		t.Fatalf("create: %d %v", st, resp)
	}
	st, resp := e.raw("GET", "/api/internal/executions/exec_s/context", "", nil)
	if st != 200 {
		t.Fatalf("context: %d %v", st, resp)
	}
	b, _ := json.Marshal(resp)
	if strings.Contains(string(b), "PRIVATE KEY") || strings.Contains(string(b), "pw-SECRET") {
		t.Fatalf("credentials in the context: %s", b)
	}
	ev, _ := resp["event"].(map[string]any)
	if ev["id"] != 1.0 || ev["name"] != "Fleet" || ev["type"] != "BASH" || ev["runLocation"] != "REMOTE" ||
		ev["serverId"] != "1" || resp["eventId"] != 1.0 || resp["userId"] != DefaultUserID {
		t.Fatalf("context: %s", b)
	}
	servers, _ := resp["metadata"].(map[string]any)["servers"].([]any)
	if len(servers) != 2 || servers[1].(map[string]any)["host"] != "10.0.0.22" {
		t.Fatalf("metadata.servers: %v", servers)
	}
}

func jsonEqual(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("got %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
