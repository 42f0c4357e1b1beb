package embedded

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
)

// Variables belong to a user, persist in the database file, and read as
// the real route answers them, through the orchestrator's own client.
func TestVariablesPerUserAndPersistent(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.client("o1")
	if _, found, err := c.GetVariable(ctx, "alice", "RUNS"); err != nil || found {
		t.Fatalf("unset: found %v, err %v", found, err)
	}
	if err := c.SetVariable(ctx, "alice", "RUNS", "1"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetVariable(ctx, "alice", "a/b c", "x"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := c.GetVariable(ctx, "bob", "RUNS"); err != nil || found {
		t.Fatalf("bob sees alice's variable: found %v, err %v", found, err)
	}
	if err := c.SetVariable(ctx, "alice", "RUNS", "2"); err != nil { // replaced, not added
		t.Fatal(err)
	}

	e.close()
	e.open()
	c = e.client("o1")
	for key, want := range map[string]string{"RUNS": "2", "a/b c": "x"} {
		if v, found, err := c.GetVariable(ctx, "alice", key); err != nil || !found || v != want {
			t.Fatalf("after reopening, %s = %q, %v, %v; want %q", key, v, found, err, want)
		}
	}
	vars, err := e.public.Variables(ctx, "alice")
	if err != nil || len(vars) != 2 || vars[0].Key != "RUNS" || vars[1].Key != "a/b c" {
		t.Fatalf("alice's variables: %+v, %v", vars, err)
	}
	if vars, err := e.public.Variables(ctx, "bob"); err != nil || len(vars) != 0 {
		t.Fatalf("bob's variables: %+v, %v", vars, err)
	}
}

// The internal route on the wire: shape, updatedAt, 404, and the quirks
// of the real route (a body parsed unconditionally, a string value).
func TestVariableRouteOnTheWire(t *testing.T) {
	e := newEnv(t)
	const path = "/api/internal/variables/alice/K"
	if st, resp := e.raw("GET", path, "", nil); st != 404 || resp["error"] != "Variable not found" {
		t.Fatalf("unset: %d %v", st, resp)
	}
	before := e.clock.Now()
	if st, resp := e.raw("PUT", path, `{"value":"v1"}`, nil); st != 200 || resp["success"] != true {
		t.Fatalf("put: %d %v", st, resp)
	}
	st, resp := e.raw("GET", path, "", nil)
	updated, _ := time.Parse(time.RFC3339Nano, asString(resp["updatedAt"]))
	if st != 200 || resp["key"] != "K" || resp["value"] != "v1" || !updated.After(before) {
		t.Fatalf("get: %d %v (updatedAt after %v)", st, resp, before)
	}
	noToken := map[string]string{"Authorization": ""}
	tests := []struct {
		name, method, body string
		headers            map[string]string
		status             int
		errText            string
	}{
		{"no token on GET", "GET", "", noToken, 401, "Unauthorized"},
		{"no token on PUT", "PUT", `{"value":"x"}`, noToken, 401, "Unauthorized"},
		{"empty body", "PUT", "", nil, 500, "Internal server error"},
		{"broken body", "PUT", `{"value":`, nil, 500, "Internal server error"},
		{"no value", "PUT", `{}`, nil, 400, "Value must be a string"},
		{"null value", "PUT", `{"value":null}`, nil, 400, "Value must be a string"},
		{"number value", "PUT", `{"value":1}`, nil, 400, "Value must be a string"},
		{"NUL in value", "PUT", `{"value":"a\u0000"}`, nil, 500, `invalid byte sequence for encoding "UTF8"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, resp := e.raw(tt.method, path, tt.body, tt.headers)
			if msg, _ := resp["error"].(string); st != tt.status || !strings.Contains(msg, tt.errText) {
				t.Fatalf("%d %v, want %d with %q", st, resp, tt.status, tt.errText)
			}
		})
	}
	if v, err := e.store.Variable(t.Context(), "alice", "K"); err != nil || v.Value != "v1" {
		t.Fatalf("refused calls changed the variable: %+v, %v", v, err)
	}
}

func TestPublicVariables(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.public.Variable(ctx, "", "K"); !errors.Is(err, ErrVariableNotFound) {
		t.Fatalf("unset: %v", err)
	}
	v, err := e.public.SetVariable(ctx, "", "K", "v")
	if err != nil || v.Key != "K" || v.Value != "v" || v.UpdatedAt.IsZero() {
		t.Fatalf("set: %+v, %v", v, err)
	}
	// No user is DefaultUserID, the user of jobs submitted without one.
	if got, found, err := e.client("o1").GetVariable(ctx, DefaultUserID, "K"); err != nil || !found || got != "v" {
		t.Fatalf("the default user's K = %q, %v, %v", got, found, err)
	}
	if _, err := e.public.Variable(ctx, "alice", "K"); !errors.Is(err, ErrVariableNotFound) {
		t.Fatalf("another user: %v", err)
	}
	if _, err := e.public.SetVariable(ctx, "", "..", "v"); err == nil {
		t.Fatal("key .. accepted")
	}
	if st, resp := e.raw("PUT", "/api/variables/K", `{"value":3}`, nil); st != 400 {
		t.Fatalf("public put without a string value: %d %v", st, resp)
	}
}

// A job's user is its metadata.userId: given, or DefaultUserID.
func TestSubmitCarriesTheUser(t *testing.T) {
	e := newEnv(t)
	req := bashJob("true")
	req.UserID = "alice"
	alice := e.submit(req)
	anyone := e.submit(bashJob("true"))
	users := map[string]string{}
	for _, j := range e.claim("o1", 2) {
		users[j.ID] = j.Metadata.UserID
	}
	if users[alice] != "alice" || users[anyone] != DefaultUserID {
		t.Fatalf("metadata.userId: %v", users)
	}
	if v := e.job(alice); v.UserID != "alice" {
		t.Fatalf("view's userId %q", v.UserID)
	}
}

// The view and a follower see what the script set through cronium.output
// and cronium.setCondition, from the job's /complete.
func TestViewShowsScriptOutputAndCondition(t *testing.T) {
	e := newEnv(t)
	id := e.submit(bashJob("true"))
	e.claim("o1", 1)
	yes := true
	err := e.client("o1").CompleteJob(t.Context(), id, backend.Completion{Status: backend.StatusCompleted,
		Output: backend.CompletionOutput{Stdout: "hi\n"}, ScriptOutput: []byte(`{"doubled":42,"runs":1}`), Condition: &yes})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	v, err := e.public.Follow(t.Context(), id, 10*time.Millisecond, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	if string(v.Result.ScriptOutput) != `{"doubled":42,"runs":1}` || v.Result.Condition == nil || !*v.Result.Condition {
		t.Fatalf("result: scriptOutput %s, condition %v", v.Result.ScriptOutput, v.Result.Condition)
	}
	if out.String() != "hi\n" {
		t.Fatalf("followed output %q", out.String())
	}
}

func asString(v any) string { s, _ := v.(string); return s }
