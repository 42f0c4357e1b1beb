package helpers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/internal/testenv"
)

var answerRE = regexp.MustCompile(`^(ok|none|err) ([A-Za-z0-9+/]*={0,2})\n$`)

// FuzzParseRequest decodes arbitrary request lines: never a panic, and a
// request that parses is encoded by the relay's rule (base64 of
// token\nop\nkey[\nvalue]) back into a line that parses the same.
func FuzzParseRequest(f *testing.F) {
	f.Add(callLine("tok", "getVariable", "K", ""))
	f.Add(callLine("tok", "setVariable", "K", "multi\nline\nvalue"))
	f.Add([]byte(base64.StdEncoding.EncodeToString([]byte("tok\nevent\n")) + "\r\n"))
	f.Add([]byte(base64.StdEncoding.EncodeToString([]byte("x"))))
	f.Add([]byte("%%%\n"))
	f.Add([]byte("  dG9r  \n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := parseRequest(line)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "malformed request") {
				t.Fatalf("error %v", err)
			}
			return
		}
		if strings.Contains(r.token+r.op, "\n") || strings.Contains(r.key, "\n") {
			t.Fatalf("a field holds a newline: %q", r)
		}
		raw := r.token + "\n" + r.op + "\n" + r.key
		if r.value != nil {
			raw += "\n" + string(r.value)
		}
		again, err := parseRequest([]byte(base64.StdEncoding.EncodeToString([]byte(raw)) + "\n"))
		if err != nil || again.token != r.token || again.op != r.op || again.key != r.key || !bytes.Equal(again.value, r.value) {
			t.Fatalf("re-encoded %q parses as %q, %v", r, again, err)
		}
	})
}

// FuzzRequestRoundTrip: whatever a script passes as key and value reaches
// the handler unchanged (token, op and key are single lines by the relay's
// construction).
func FuzzRequestRoundTrip(f *testing.F) {
	f.Add("tok", "setVariable", "K", []byte("v"))
	f.Add("", "", "", []byte{})
	f.Add("t", "output", "", []byte("{\"a\":\n[1, 2]}\n\n"))
	f.Add("t", "getVariable", "k\r", []byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, token, op, key string, value []byte) {
		if strings.ContainsRune(token+op+key, '\n') {
			return
		}
		r, err := parseRequest(callLine(token, op, key, string(value)))
		if err != nil || r.token != token || r.op != op || r.key != key || string(r.value) != string(value) {
			t.Fatalf("parsed %q, %v", r, err)
		}
	})
}

// FuzzServe feeds arbitrary relay input to serve: one well-formed answer
// per complete request line, in order, and nothing else.
func FuzzServe(f *testing.F) {
	f.Add([]byte(string(callLine("t", "event", "", "")) + "garbage\n\n" + "no newline"))
	f.Add([]byte("\n\n\n"))
	f.Add([]byte("a\r\nb\rc\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		var got [][]byte
		err := serve(context.Background(), bytes.NewReader(in), &out, func(_ context.Context, line []byte) answer {
			got = append(got, bytes.Clone(line))
			return ok(line)
		})
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.SplitAfter(in, []byte("\n"))
		lines = lines[:len(lines)-1] // the last piece has no newline: no request yet
		answers := strings.SplitAfter(out.String(), "\n")
		answers = answers[:len(answers)-1]
		if len(got) != len(lines) || len(answers) != len(lines) {
			t.Fatalf("%d lines, %d handled, %d answers", len(lines), len(got), len(answers))
		}
		for i, a := range answers {
			m := answerRE.FindStringSubmatch(a)
			if m == nil || m[1] != "ok" {
				t.Fatalf("answer %q", a)
			}
			body, err := base64.StdEncoding.DecodeString(m[2])
			if err != nil || !bytes.Equal(body, lines[i]) || !bytes.Equal(got[i], lines[i]) {
				t.Fatalf("line %q handled as %q, answered %q", lines[i], got[i], body)
			}
		}
	})
}

// FuzzCall makes arbitrary helper calls with the execution's credential
// (or a wrong one): every answer is ok, none or err on one line, and what
// a call accepted is what later calls and the report see.
func FuzzCall(f *testing.F) {
	for _, c := range []struct {
		op, key, value string
	}{
		{"getVariable", "SET", ""}, {"setVariable", "K", "v"}, {"setVariable", "K", ""}, {"setVariable", "", "v"},
		{"setVariable", "K\n", "v"}, {"setVariable", "K", "\xff"}, {"output", "", `{"a": [1, 2]}`},
		{"output", "", "{nope"}, {"output-text", "", "plain words"}, {"output-text", "", "\xff"},
		{"setCondition", "", " TRUE "}, {"setCondition", "", "maybe"}, {"getCondition", "", ""},
		{"event", "", ""}, {"sendEmail", "", ""},
	} {
		f.Add(c.op, c.key, []byte(c.value), true)
	}
	f.Add("getVariable", "SET", []byte{}, false)
	f.Fuzz(func(t *testing.T, op, key string, value []byte, goodToken bool) {
		if strings.ContainsRune(op+key, '\n') {
			return
		}
		b := withVar("alice", "SET", "v")
		svc, err := New(Config{Backend: b, ExecutionID: "exec-1", UserID: "alice",
			Event: json.RawMessage(`{"id":"7","name":"from metadata"}`)}, Saved{})
		if err != nil {
			t.Fatal(err)
		}
		token := svc.Saved().Token
		if !goodToken {
			token = strings.Repeat("0", len(token))
		}
		a := svc.call(context.Background(), "", callLine(token, op, key, string(value)))
		if !answerRE.Match(a.line()) {
			t.Fatalf("answer line %q", a.line())
		}
		if !goodToken && a.status != "err" {
			t.Fatalf("a wrong credential got %s", a.status)
		}
		if a.status != "ok" {
			return
		}
		checkAccepted(t, svc, b, op, key, value)
	})
}

func checkAccepted(t *testing.T, svc *Service, b *testenv.Variables, op, key string, value []byte) {
	t.Helper()
	out, cond := svc.Report(nil)
	switch op {
	case "setVariable":
		if got := b.Get("alice", key); got != string(value) {
			t.Fatalf("set %q, stored %q", value, got)
		}
	case "output", "output-text":
		if !json.Valid(out) || len(out) > maxOutput {
			t.Fatalf("output %q", out)
		}
		if op == "output" {
			var c bytes.Buffer
			_ = json.Compact(&c, value)
			if !bytes.Equal(out, c.Bytes()) {
				t.Fatalf("output %q, set %q", out, value)
			}
		}
	case "setCondition":
		want := strings.ToLower(strings.TrimSpace(string(value)))
		if cond == nil || *cond != (want == "true" || want == "1") {
			t.Fatalf("condition %v after %q", cond, value)
		}
		a := svc.call(context.Background(), "", callLine(svc.Saved().Token, "getCondition", "", ""))
		if a.status != "ok" || string(a.body) != strconv.FormatBool(*cond) {
			t.Fatalf("getCondition = %s %q", a.status, a.body)
		}
	}
}
