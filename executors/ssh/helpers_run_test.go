package ssh

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/helpers"
	"github.com/cronium/orchestrator/internal/testenv"
)

func withHelpers(t *testing.T, spec executors.Spec, store helpers.Backend) (executors.Spec, *helpers.Service) {
	t.Helper()
	svc, err := helpers.New(helpers.Config{Backend: store, ExecutionID: spec.ExecutionID, UserID: "alice",
		Event: json.RawMessage(`{"name":"nightly"}`)}, helpers.Saved{})
	if err != nil {
		t.Fatal(err)
	}
	spec.Helpers = svc
	return spec, svc
}

// The helpers over SSH, in each language the server has, for two jobs at
// once on one server: each job's relay runs on a session of its own.
func TestRuntimeHelpersOverSSH(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	store := &testenv.Variables{}
	store.Set("alice", "GREETING", "hello")
	for _, tt := range []struct {
		lang   executors.Language
		script string
		output string
	}{
		{executors.Bash, `echo "$(cronium_getVariable GREETING) $(cronium_input)"; cronium_setVariable FROM_BASH 1
cronium_setCondition true; cronium_output "{\"lang\": \"bash\", \"event\": $(cronium_event)}"`,
			`{"lang":"bash","event":{"name":"nightly"}}`},
		{executors.Python, "print(cronium.getVariable('GREETING'), cronium.input()['n'])\n" +
			"cronium.setVariable('FROM_PYTHON', '1'); cronium.setCondition(True)\n" +
			"cronium.output({'lang': 'python', 'event': cronium.event()})\n",
			`{"lang":"python","event":{"name":"nightly"}}`},
		{executors.Node, "console.log(cronium.getVariable('GREETING'), cronium.input().n);\n" +
			"cronium.setVariable('FROM_NODE', '1'); cronium.setCondition(true);\n" +
			"cronium.output({lang: 'node', event: cronium.event()});\n",
			`{"lang":"node","event":{"name":"nightly"}}`},
	} {
		t.Run(string(tt.lang), func(t *testing.T) {
			t.Parallel()
			spec := bashSpec(t, tt.script, keyServer(s))
			spec.Script.Language = tt.lang
			spec.InputData = []byte(`{"n":21}`)
			spec, svc := withHelpers(t, spec, store)
			res, c, err := run(t, e, spec)
			if err != nil || !res.Succeeded() {
				t.Fatalf("res %+v err %v stderr %q", res, err, c.stderr.String())
			}
			if out := c.stdout.String(); out != "hello 21\n" && out != "hello {\"n\":21}\n" {
				t.Errorf("stdout %q, stderr %q", out, c.stderr.String())
			}
			out, cond := svc.Report(nil)
			if string(out) != tt.output || cond == nil || !*cond {
				t.Errorf("output %s, condition %v", out, cond)
			}
		})
	}
}

// A multi-server job: each server's run sets its own output and condition.
func TestRuntimeHelpersMultiServer(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	web1, web2 := keyServer(s), keyServer(s)
	web1.ID, web1.Name, web2.ID, web2.Name = "1", "web1", "2", "web2"
	spec := bashSpec(t, `cronium_output "\"$CRONIUM_EXECUTION_ID\""; cronium_setCondition true`, web1, web2)
	spec, svc := withHelpers(t, spec, &testenv.Variables{})
	res, c, err := run(t, e, spec)
	if err != nil || !res.Succeeded() {
		t.Fatalf("res %+v err %v stderr %q", res, err, c.stderr.String())
	}
	out, cond := svc.Report([]string{"web1", "web2"})
	var byServer map[string]string
	if json.Unmarshal(out, &byServer) != nil || len(byServer) != 2 || byServer["web1"] == byServer["web2"] ||
		cond == nil || !*cond {
		t.Fatalf("output %s, condition %v", out, cond)
	}
}

// A call made while no orchestrator follows the job (it detached; it
// restarts) lands once the resumed Run's relay is there.
func TestRuntimeHelpersAcrossADetach(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	store := &testenv.Variables{}
	spec := bashSpec(t, `cronium_setVariable BEFORE 1; echo ready
while [ ! -f /tmp/go-$CRONIUM_EXECUTION_ID ]; do sleep 0.1; done
cronium_setVariable AFTER 2; cronium_output '{"done": true}'`, keyServer(s))
	spec, svc := withHelpers(t, spec, store)
	var first capture
	o := runUntil(t, e, spec, &first, func() bool { return strings.Contains(first.stdout.String(), "ready\n") },
		func(cancel context.CancelCauseFunc) { cancel(executors.ErrDetached) })
	if !errors.Is(o.err, executors.ErrDetached) {
		t.Fatalf("detach: %v", o.err)
	}
	// The script now calls while nobody relays.
	if _, err := s.Exec("touch /tmp/go-" + spec.ExecutionID); err != nil {
		t.Fatal(err)
	}
	spec.Resume = executors.Resume{Resuming: true, Started: true, StdoutBytes: first.stdout.Len()}
	res, c, err := run(t, e, spec)
	if err != nil || !res.Succeeded() {
		t.Fatalf("resumed: res %+v err %v stderr %q", res, err, c.stderr.String())
	}
	if out, _ := svc.Report(nil); string(out) != `{"done":true}` || store.Get("alice", "BEFORE") != "1" || store.Get("alice", "AFTER") != "2" {
		t.Fatalf("output %s, BEFORE %q, AFTER %q", out, store.Get("alice", "BEFORE"), store.Get("alice", "AFTER"))
	}
}

// sshd killed under a job whose script then calls: the call waits, and
// lands through the resumed Run's relay once sshd is back.
func TestRuntimeHelpersAcrossADroppedConnection(t *testing.T) {
	t.Parallel()
	s := testenv.StartSSHD(t, 0)
	e := newExecutor(t, testOptions(t, s))
	store := &testenv.Variables{}
	spec := bashSpec(t, `echo ready; while [ ! -f /tmp/go-$CRONIUM_EXECUTION_ID ]; do sleep 0.1; done
cronium_setVariable AFTER 2; cronium_setCondition true`, keyServer(s))
	spec, svc := withHelpers(t, spec, store)
	var first capture
	_, err := runUntilLost(t, e, spec, &first, "ready\n", func() {
		if err := s.KillSSHD(); err != nil {
			t.Fatal(err)
		}
	})
	if !executors.IsRetryable(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	// The script calls while the connection is down.
	if _, err := s.Exec("touch /tmp/go-" + spec.ExecutionID); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	spec.Resume = executors.Resume{Resuming: true, Started: true, StdoutBytes: first.stdout.Len()}
	res, c, err := run(t, e, spec)
	if err != nil || !res.Succeeded() {
		t.Fatalf("resumed: res %+v err %v stderr %q", res, err, c.stderr.String())
	}
	if _, cond := svc.Report(nil); cond == nil || !*cond || store.Get("alice", "AFTER") != "2" {
		t.Fatalf("condition %v, AFTER %q", cond, store.Get("alice", "AFTER"))
	}
}
