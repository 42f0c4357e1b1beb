package docker

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/helpers"
	"github.com/cronium/orchestrator/internal/testenv"
)

// The runtime helpers in each runtime image, with the default network and
// with none: the relay needs neither a port nor a mount.
func TestRuntimeHelpersInContainers(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	store := &testenv.Variables{}
	store.Set("alice", "GREETING", "hello")
	scripts := map[executors.Language]string{
		executors.Python: "print(cronium.getVariable('GREETING'), cronium.input()['n'])\n" +
			"cronium.setVariable('FROM_PYTHON', 'py')\ncronium.setCondition(True)\n" +
			"cronium.output({'lang': 'python', 'event': cronium.event()['name']})\n",
		executors.Node: "console.log(cronium.getVariable('GREETING'), cronium.input().n);\n" +
			"cronium.setVariable('FROM_NODE', 'js'); cronium.setCondition(false);\n" +
			"cronium.output({lang: 'node', event: cronium.event().name});\n",
		executors.Bash: `echo "$(cronium_getVariable GREETING) $(cronium_input)"
cronium_setVariable FROM_BASH sh; cronium_setCondition true
cronium_output '{"lang": "bash"}'
`,
	}
	wantStdout := map[executors.Language]string{
		executors.Python: "hello 21\n", executors.Node: "hello 21\n", executors.Bash: "hello {\"n\": 21}\n",
	}
	wantOutput := map[executors.Language]string{
		executors.Python: `{"lang":"python","event":"nightly"}`, executors.Node: `{"lang":"node","event":"nightly"}`,
		executors.Bash: `{"lang":"bash"}`,
	}
	for _, network := range []string{"bridge", "none"} {
		e := d.executor(func(o *Options) { o.NetworkMode = network })
		for lang, script := range scripts {
			t.Run(network+"/"+string(lang), func(t *testing.T) {
				t.Parallel()
				spec := d.spec(lang, script)
				spec.InputData = []byte(`{"n": 21}`)
				svc, err := helpers.New(helpers.Config{Backend: store, ExecutionID: spec.ExecutionID, UserID: "alice",
					Event: json.RawMessage(`{"name":"nightly"}`)}, helpers.Saved{})
				if err != nil {
					t.Fatal(err)
				}
				spec.Helpers = svc
				o := newOutput()
				res, err := e.Run(t.Context(), spec, o.writers())
				mustSucceed(t, res, err, o)
				if o.stdout.String() != wantStdout[lang] || o.stderr.String() != "" {
					t.Errorf("stdout %q, stderr %q", o.stdout.String(), o.stderr.String())
				}
				out, cond := svc.Report(nil)
				if string(out) != wantOutput[lang] || cond == nil || *cond != (lang != executors.Node) {
					t.Errorf("output %s, condition %v", out, cond)
				}
				if token := svc.Saved().Token; strings.Contains(o.stdout.String()+o.stderr.String(), token) {
					t.Error("the credential leaked into the output")
				}
			})
		}
	}
	t.Cleanup(func() {
		for _, k := range []string{"FROM_PYTHON", "FROM_NODE", "FROM_BASH"} {
			if store.Get("alice", k) == "" {
				t.Errorf("variable %s was not set", k)
			}
		}
	})
}
