package helpers

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cronium/orchestrator/executors"
)

// memBackend keeps variables per user in memory: a fake for what the
// embedded backend does for real (tested there and end to end).
type memBackend struct {
	mu   sync.Mutex
	vars map[string]string
	down bool
	ctx  json.RawMessage
}

func (b *memBackend) GetVariable(_ context.Context, user, key string) (string, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return "", false, errors.New("503 Service Unavailable")
	}
	v, ok := b.vars[user+"/"+key]
	return v, ok, nil
}

func (b *memBackend) SetVariable(_ context.Context, user, key, value string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return errors.New("503 Service Unavailable")
	}
	if b.vars == nil {
		b.vars = map[string]string{}
	}
	b.vars[user+"/"+key] = value
	return nil
}

func (b *memBackend) ExecutionContext(context.Context, string) (json.RawMessage, error) {
	if b.ctx == nil {
		return nil, errors.New("404 Not Found")
	}
	return b.ctx, nil
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

// The shared page's examples, verbatim, in each language.
const (
	pythonExample = `data = cronium.input()
runs = int(cronium.getVariable("RUNS") or "0") + 1
cronium.setVariable("RUNS", str(runs))
cronium.setCondition(data.get("n", 0) > 10)
cronium.output({"doubled": data.get("n", 0) * 2, "runs": runs, "event": cronium.event().get("name")})
`
	nodeExample = "const n = parseInt(cronium.getVariable('RUNS') || '0') + 1;\n" +
		"cronium.setVariable('RUNS', String(n));\n" +
		"cronium.setCondition(n % 2 === 0);\n" +
		"cronium.output({ runs: n, input: cronium.input() });\n" +
		"console.log(`run ${n}, condition ${cronium.getCondition()}`);\n"
	bashExample = `runs=$(cronium_getVariable RUNS); runs=$(( ${runs:-0} + 1 ))
cronium_setVariable RUNS "$runs"
cronium_setCondition true
cronium_output "{\"runs\": $runs}"
echo "input was $(cronium_input)"
`
)

func TestExamplesRunUnchanged(t *testing.T) {
	b := &memBackend{}
	for _, tt := range []struct {
		lang, interp, script string
		wantOutput           string
		wantCond             bool
		wantStdout           string
	}{
		{"python", "python3", pythonExample, `{"doubled":42,"runs":1,"event":"from metadata"}`, true, ""},
		{"node", "node", nodeExample, `{"runs":2,"input":{"n":21}}`, true, "run 2, condition true\n"},
		{"bash", "bash", bashExample, `{"runs":3}`, true, "input was {\"n\": 21}\n"},
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
