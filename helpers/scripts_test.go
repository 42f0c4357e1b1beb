package helpers

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/internal/testenv"
)

func (l *local) script(t *testing.T, interp, body string) (stdout, stderr string, code int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "script")
	os.WriteFile(path, []byte(body), 0o600)
	return l.run(t, interp, path)
}

// A refused call is an error in the script's own terms, the script's line
// numbers are its own, and nothing of the protocol reaches its output.
func TestErrorsInTheScriptsTerms(t *testing.T) {
	for _, tt := range []struct {
		lang, interp, script string
		wantOut              string
		wantErr              []string
		wantCode             int
	}{
		{"python", "python3", "try:\n    cronium.getVariable('K')\nexcept cronium.Error as e:\n    print('caught:', e)\n" +
			"try:\n    cronium.output(object())\nexcept cronium.Error as e:\n    print('caught:', e)\n" +
			"cronium.sendEmail('x')\n",
			"caught: cronium.getVariable: refused: variables belong to a user and this job has none (metadata.userId)\n" +
				"caught: cronium.output: the value is not JSON-serialisable: Object of type object is not JSON serializable\n",
			[]string{`line 9, in <module>`, "cronium.sendEmail: tool actions are not available"}, 1},
		{"node", "node", "try { cronium.setVariable('K', 'v'); } catch (e) { console.log('caught:', e.message); }\n" +
			"try { cronium.output(undefined); } catch (e) { console.log('caught:', e.message); }\n" +
			"cronium.setCondition(true); console.log(cronium.getCondition());\n" +
			"cronium.executeToolAction();\n",
			"caught: cronium.setVariable: refused: variables belong to a user and this job has none (metadata.userId)\n" +
				"caught: cronium.output: the value is not JSON-serialisable\ntrue\n",
			[]string{"script:4", "cronium.executeToolAction: tool actions are not available"}, 1},
		{"bash", "bash", "cronium_setVariable K v || echo \"status $?\"\ncronium_get_condition\nundefined_command_here\n",
			"status 1\nfalse\n",
			[]string{"cronium: refused: variables belong to a user", "line 3: undefined_command_here"}, 127},
	} {
		t.Run(tt.lang, func(t *testing.T) {
			l := startLocal(t, newService(t, &testenv.Variables{}, ""))
			stdout, stderr, code := l.script(t, tt.interp, tt.script)
			if stdout != tt.wantOut || code != tt.wantCode {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			if strings.Contains(stdout+stderr, l.svc.Saved().Token) || strings.Contains(stdout+stderr, "ok ") {
				t.Errorf("protocol traffic in the output:\n%s\n%s", stdout, stderr)
			}
		})
	}
}

// Calls made at once, from background jobs of one script, each get their
// own answer.
func TestConcurrentCalls(t *testing.T) {
	b := &testenv.Variables{}
	l := startLocal(t, newService(t, b, "alice"))
	stdout, stderr, code := l.script(t, "bash", `for i in $(seq 1 20); do cronium_setVariable "K$i" "v$i" & done; wait
for i in $(seq 1 20); do echo "$(cronium_getVariable "K$i")" & done | sort | tr '\n' ' '`)
	want := "v1 v10 v11 v12 v13 v14 v15 v16 v17 v18 v19 v2 v20 v3 v4 v5 v6 v7 v8 v9 "
	if code != 0 || stdout != want {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// A call made while no orchestrator listens waits; one that the relay of
// a process that died had taken is served by the next relay: a restarted
// orchestrator loses no call.
func TestCallsSurviveTheRelay(t *testing.T) {
	b := withVar("alice", "K", "kept")
	svc := newService(t, b, "alice")
	dir := filepath.Join(t.TempDir(), ".cronium")
	os.Mkdir(dir, 0o700)
	inst := svc.Install(dir, nil)
	for _, f := range inst.Files {
		os.WriteFile(filepath.Join(dir, f.Name), f.Data, f.Mode)
	}
	env := append(os.Environ(), EnvDir+"="+dir, "BASH_ENV="+filepath.Join(dir, "cronium.sh"))
	script := exec.Command("bash", "-c", `echo "got $(cronium_getVariable K)"`)
	script.Env = env
	out, _ := script.StdoutPipe()
	if err := script.Start(); err != nil {
		t.Fatal(err)
	}
	defer script.Wait()

	// The first relay's orchestrator reads the request and dies.
	dying := exec.Command(inst.Relay[0], inst.Relay[1:]...)
	dying.Stderr = os.Stderr
	stdin, _ := dying.StdinPipe()
	stdout, _ := dying.StdoutPipe()
	if err := dying.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatalf("the relay sent no request: %v", err)
	}
	stdin.Close()
	stdout.Close()

	// The next one, as a restarted orchestrator starts it.
	l := &local{dir: dir, env: env, svc: svc}
	l.relay(t, inst.Relay)
	done := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		done <- line
	}()
	select {
	case line := <-done:
		if line != "got kept\n" {
			t.Fatalf("the script printed %q", line)
		}
	case <-time.After(time.Minute):
		t.Fatal("the pending call was never answered")
	}
	dying.Process.Kill() // killed by the second relay already, as a rule
	dying.Wait()
}
