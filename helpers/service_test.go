package helpers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/internal/testenv"
)

// callLine is a request line as the relay sends it.
func callLine(token, op, key, value string) []byte {
	return []byte(base64.StdEncoding.EncodeToString([]byte(token+"\n"+op+"\n"+key+"\n"+value)) + "\n")
}

type countingObserver map[string]int

func (c countingObserver) HelperCall(helper, outcome string) { c[helper+"/"+outcome]++ }

// TestCall: each request, good or bad, and its answer.
func TestCall(t *testing.T) {
	b := withVar("alice", "SET", "v")
	svc := newService(t, b, "alice")
	tok := svc.Saved().Token
	long := strings.Repeat("x", maxValue+1)
	tests := []struct {
		name         string
		line         []byte
		status, body string // body: a substring of the decoded answer
	}{
		{"get a variable", callLine(tok, "getVariable", "SET", ""), "ok", "v"},
		{"an unset variable", callLine(tok, "getVariable", "UNSET", ""), "none", ""},
		{"set a variable", callLine(tok, "setVariable", "K", "1"), "ok", ""},
		{"another execution's credential", callLine(strings.Repeat("0", 64), "getVariable", "SET", ""), "err", "credential is not this execution's"},
		{"no credential", callLine("", "getVariable", "SET", ""), "err", "credential"},
		{"not base64", []byte("%%%\n"), "err", "malformed request"},
		{"too few fields", []byte(base64.StdEncoding.EncodeToString([]byte("x")) + "\n"), "err", "too few fields"},
		{"an unknown helper", callLine(tok, "sendEmail", "", ""), "err", `no helper "sendEmail"`},
		{"an empty name", callLine(tok, "setVariable", "", "1"), "err", "needs a name"},
		{"a name too long", callLine(tok, "getVariable", strings.Repeat("k", maxKey+1), ""), "err", "at most 255 bytes"},
		{"an empty value", callLine(tok, "setVariable", "K", ""), "err", "cannot be empty"},
		{"a value too long", callLine(tok, "setVariable", "K", long), "err", "at most 32768 bytes"},
		{"a value not text", callLine(tok, "setVariable", "K", "\xff\xfe"), "err", "must be text"},
		{"output not JSON", callLine(tok, "output", "", "{nope"), "err", "not valid JSON"},
		{"output too large", callLine(tok, "output", "", `"`+strings.Repeat("x", maxOutput)+`"`), "err", "at most 1048576"},
		{"output as text", callLine(tok, "output-text", "", "plain words"), "ok", ""},
		{"a condition", callLine(tok, "setCondition", "", "true"), "ok", ""},
		{"read it back", callLine(tok, "getCondition", "", ""), "ok", "true"},
		{"a condition that is not a boolean", callLine(tok, "setCondition", "", "maybe"), "err", "true or false"},
		{"the event from the job's metadata", callLine(tok, "event", "", ""), "ok", `"name":"from metadata"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := svc.call(t.Context(), "", tt.line)
			if a.status != tt.status || !strings.Contains(string(a.body), tt.body) {
				t.Fatalf("answer %s %q, want %s containing %q", a.status, a.body, tt.status, tt.body)
			}
		})
	}
	if out, _ := svc.Report(nil); string(out) != `"plain words"` {
		t.Errorf("output %s, want the text as a JSON string", out)
	}
	if v := b.Get("alice", "K"); v != "1" {
		t.Errorf("the variable was not set: %q", v)
	}
}

func TestCallsNeedAUserAndABackend(t *testing.T) {
	b := &testenv.Variables{}
	svc := newService(t, b, "")
	tok := svc.Saved().Token
	if a := svc.call(t.Context(), "", callLine(tok, "getVariable", "K", "")); a.status != "err" ||
		!strings.Contains(string(a.body), "this job has none (metadata.userId)") {
		t.Fatalf("no user: %s %s", a.status, a.body)
	}
	obs := countingObserver{}
	svc = newService(t, b, "bob")
	svc.cfg.Observer = obs
	b.Down = true
	a := svc.call(t.Context(), "", callLine(svc.Saved().Token, "setVariable", "K", "v"))
	if a.status != "err" || !strings.Contains(string(a.body), "the backend did not answer: 503") {
		t.Fatalf("backend down: %s %s", a.status, a.body)
	}
	svc.call(t.Context(), "", callLine("wrong", "getVariable", "K", ""))
	if obs["setVariable/failed"] != 1 || obs["getVariable/refused"] != 1 {
		t.Fatalf("counted %v", obs)
	}
}

func TestEventFromTheContextRoute(t *testing.T) {
	b := &testenv.Variables{Context: json.RawMessage(`{"executionId":"exec-1","event":{"id":42,"name":"Nightly","content":"` +
		strings.Repeat("x", maxEvent) + `"}}`)}
	svc := newService(t, b, "alice")
	a := svc.call(t.Context(), "", callLine(svc.Saved().Token, "event", "", ""))
	if a.status != "ok" || string(a.body) != `{"id":42,"name":"Nightly"}` {
		t.Fatalf("event %s %.80s", a.status, a.body)
	}
}

// Report: one run's values as set; several servers' combined.
func TestReport(t *testing.T) {
	yes, no := true, false
	svc := newService(t, &testenv.Variables{}, "")
	svc.saved.Results = map[string]Result{
		"web1": {Output: json.RawMessage(`1`), Condition: &yes},
		"web2": {Condition: &no},
		"web3": {Output: json.RawMessage(`3`), Condition: &yes},
	}
	out, cond := svc.Report([]string{"web1", "web2", "web3"})
	if string(out) != `{"web1":1,"web3":3}` || cond == nil || *cond {
		t.Errorf("three servers: output %s, condition %v", out, cond)
	}
	svc.saved.Results["web2"] = Result{Condition: &yes}
	if _, cond := svc.Report([]string{"web1", "web2", "web3"}); cond == nil || !*cond {
		t.Errorf("all true: condition %v", cond)
	}
	svc.saved.Results = map[string]Result{"web1": {Condition: &yes}}
	if _, cond := svc.Report([]string{"web1", "web2"}); cond == nil || *cond {
		t.Errorf("one of two set true: condition %v, want false", cond)
	}
	svc.saved.Results = map[string]Result{}
	if out, cond := svc.Report([]string{"web1", "web2"}); out != nil || cond != nil {
		t.Errorf("nothing set: %s %v", out, cond)
	}
}

// What the script set is kept (for the journal) before the script hears
// back, and a restored service takes the same credential.
func TestKeptAndRestored(t *testing.T) {
	var kept Saved
	svc, _ := New(Config{Backend: &testenv.Variables{}, Keep: func(s Saved) error { kept = s; return nil }}, Saved{})
	svc.call(t.Context(), "", callLine(svc.Saved().Token, "output", "", `{"a":1}`))
	if string(kept.Results[""].Output) != `{"a":1}` || kept.Token != svc.Saved().Token || len(kept.Token) != 64 {
		t.Fatalf("kept %+v", kept)
	}
	again, _ := New(Config{Backend: &testenv.Variables{}}, kept)
	if a := again.call(context.Background(), "", callLine(kept.Token, "getCondition", "", "")); a.status != "ok" {
		t.Fatalf("restored service refused the credential: %s %s", a.status, a.body)
	}
	if out, _ := again.Report(nil); string(out) != `{"a":1}` {
		t.Fatalf("restored output %s", out)
	}
}
