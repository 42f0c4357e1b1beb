package helpers

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
)

// withVar is a backend where user has key set to value.
func withVar(user, key, value string) *testenv.Variables {
	v := &testenv.Variables{}
	v.Set(user, key, value)
	return v
}

// local runs the helpers' real scripts on this machine: the relay as a
// process whose stdin and stdout go to Serve, as docker exec or an SSH
// session would carry them.
type local struct {
	dir string
	env []string
	svc *Service
}

func startLocal(t *testing.T, svc *Service) *local {
	t.Helper()
	dir := filepath.Join(t.TempDir(), ".cronium")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(dir, "input.json")
	os.WriteFile(input, []byte(`{"n": 21}`), 0o600)
	inst := svc.Install(dir, []executors.EnvVar{{Name: "PYTHONPATH", Value: "/opt/theirs"}})
	for _, f := range inst.Files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, f.Mode); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "CRONIUM_INPUT_FILE="+input)
	for _, v := range inst.Env {
		env = append(env, v.Name+"="+v.Value)
	}
	l := &local{dir: dir, env: env, svc: svc}
	l.relay(t, inst.Relay)
	return l
}

// relay starts a relay and serves it until the test ends.
func (l *local) relay(t testing.TB, argv []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.svc.Serve(context.Background(), "", stdout, stdin) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		<-done
	})
	return cmd
}

// run runs a script with the helpers in its environment.
func (l *local) run(t *testing.T, argv ...string) (stdout, stderr string, code int) {
	t.Helper()
	if _, err := exec.LookPath(argv[0]); err != nil {
		t.Skipf("%s is not installed here (the container tests run it in its image)", argv[0])
	}
	cmd := exec.CommandContext(t.Context(), argv[0], argv[1:]...)
	cmd.Env = l.env
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func newService(t *testing.T, b Backend, user string) *Service {
	t.Helper()
	svc, err := New(Config{Backend: b, ExecutionID: "exec-1", UserID: user,
		Event: json.RawMessage(`{"id":"7","name":"from metadata"}`)}, Saved{})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func TestExamplesRunUnchanged(t *testing.T) {
	b := &testenv.Variables{}
	for _, tt := range []struct {
		lang, interp, script string
		wantOutput           string
		wantCond             bool
		wantStdout           string
	}{
		{"python", "python3", testenv.PythonExample, `{"doubled":42,"runs":1,"event":"from metadata"}`, true, ""},
		{"node", "node", testenv.NodeExample, `{"runs":2,"input":{"n":21}}`, true, "run 2, condition true\n"},
		{"bash", "bash", testenv.BashExample, `{"runs":3}`, true, "input was {\"n\": 21}\n"},
	} {
		t.Run(tt.lang, func(t *testing.T) {
			l := startLocal(t, newService(t, b, "alice"))
			path := filepath.Join(t.TempDir(), "script")
			os.WriteFile(path, []byte(tt.script), 0o600)
			stdout, stderr, code := l.run(t, tt.interp, path)
			if code != 0 || stdout != tt.wantStdout {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			out, cond := l.svc.Report(nil)
			if string(out) != tt.wantOutput || cond == nil || *cond != tt.wantCond {
				t.Fatalf("output %s, condition %v", out, cond)
			}
		})
	}
}
