package daemon

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
)

func asUser(user, name string) func(*embedded.SubmitRequest) {
	return func(r *embedded.SubmitRequest) {
		r.UserID, r.Name, r.InputData = user, name, json.RawMessage(`{"n": 21}`)
	}
}

// The documented examples run unchanged in containers, with the default
// network and with none, one job after another for one user: each reads
// the variable the last one set; another user's job does not see it. What
// each sets arrives in the job's one /complete.
func TestRuntimeHelpersEndToEndInContainers(t *testing.T) {
	for _, network := range []string{"bridge", "none"} {
		t.Run(network, func(t *testing.T) {
			s, _ := dockerStack(t, func(c *config.Config) { c.Docker.NetworkMode = network })
			user := "alice-" + network
			for i, tt := range []struct {
				lang, script, output, stdout string
				condition                    bool
			}{
				{"PYTHON", testenv.PythonExample, `{"doubled":42,"runs":1,"event":"nightly"}`, "", true},
				{"NODEJS", testenv.NodeExample, `{"runs":2,"input":{"n":21}}`, "run 2, condition true\n", true},
				{"BASH", testenv.BashExample, `{"runs":3}`, "input was {\"n\":21}\n", true},
			} {
				v := s.wait(s.submit(script(tt.lang, tt.script, asUser(user, "nightly"))), dockerPatience)
				s.assertOneTerminalUpdate(t, v)
				if v.Status != "completed" || v.Output.Stdout != tt.stdout || string(v.Result.ScriptOutput) != tt.output ||
					v.Result.Condition == nil || *v.Result.Condition != tt.condition {
					t.Fatalf("job %d (%s): %s, stdout %q, stderr %q, output %s, condition %v", i, tt.lang, v.Status,
						v.Output.Stdout, v.Output.Stderr, v.Result.ScriptOutput, v.Result.Condition)
				}
			}
			// Another user's job starts from nothing.
			v := s.wait(s.submit(script("BASH", testenv.BashExample, asUser("bob-"+network, "other"))), dockerPatience)
			if string(v.Result.ScriptOutput) != `{"runs":1}` {
				t.Fatalf("bob's job read alice's variable: output %s", v.Result.ScriptOutput)
			}
		})
	}
}

// Over SSH, two jobs at once on one server, each with its own relay.
func TestRuntimeHelpersEndToEndOverSSH(t *testing.T) {
	srv := testenv.StartSSHD(t, 0)
	s := sshStack(t, []*testenv.SSHD{srv})
	var ids []string
	for i := range 2 {
		r := sshJob(fmt.Sprintf(`cronium_setVariable JOB%d "$CRONIUM_EXECUTION_ID"; sleep 1
cronium_output "{\"job\": %d, \"event\": $(cronium_event)}"; cronium_setCondition true`, i, i), srv)
		asUser("carol", "remote nightly")(&r)
		ids = append(ids, s.submit(r))
	}
	for i, id := range ids {
		v := s.wait(id, testenv.Patience)
		s.assertOneTerminalUpdate(t, v)
		var out struct {
			Job   int `json:"job"`
			Event struct {
				ID          json.Number `json:"id"`
				Name        string      `json:"name"`
				RunLocation string      `json:"runLocation"`
			} `json:"event"`
		}
		if v.Status != "completed" || json.Unmarshal(v.Result.ScriptOutput, &out) != nil || out.Job != i ||
			out.Event.Name != "remote nightly" || out.Event.ID == "" || out.Event.RunLocation != "REMOTE" ||
			v.Result.Condition == nil || !*v.Result.Condition {
			t.Fatalf("job %d: %s, output %s, condition %v, stderr %q", i, v.Status, v.Result.ScriptOutput,
				v.Result.Condition, v.Output.Stderr)
		}
	}
}

// A script that breaks the rules gets an error it can catch, and its job
// goes on; nothing of the protocol reaches its output.
func TestRuntimeHelpersBadCallsEndToEnd(t *testing.T) {
	s, _ := dockerStack(t, daemontest.Listeners)
	v := s.wait(s.submit(script("PYTHON", `
for call in (lambda: cronium.setVariable("", "x"), lambda: cronium.setVariable("K", "x" * 40000),
             lambda: cronium.output("x" * (2 << 20)), lambda: cronium.output(set()), lambda: cronium.sendEmail()):
    try:
        call()
    except cronium.Error as e:
        print(str(e).split(":")[0])
cronium.output("still here")
`, asUser("dave", "bad"))), dockerPatience)
	want := "cronium.setVariable\ncronium.setVariable\ncronium.output\ncronium.output\ncronium.sendEmail\n"
	if v.Status != "completed" || v.Output.Stdout != want || v.Output.Stderr != "" ||
		string(v.Result.ScriptOutput) != `"still here"` {
		t.Fatalf("%s, stdout %q, stderr %q, output %s", v.Status, v.Output.Stdout, v.Output.Stderr, v.Result.ScriptOutput)
	}
	if strings.Contains(v.Output.Stdout, "ok ") {
		t.Fatal("protocol traffic in the output")
	}
	s.jobsDone(t)
	text := s.scrape(t)
	refused := testenv.MetricValue(text, "cronium_orchestrator_helper_calls_total", "helper", "setVariable", "outcome", "refused")
	output := testenv.MetricValue(text, "cronium_orchestrator_helper_calls_total", "helper", "output", "outcome", "ok")
	if refused != 2 || output != 1 {
		t.Fatalf("helper_calls_total: setVariable refused %v (want 2), output ok %v (want 1)", refused, output)
	}
}
