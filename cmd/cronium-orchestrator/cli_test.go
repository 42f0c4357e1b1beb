package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/orchestrator/internal/testenv"
)

// The CLI as users meet it: the real binary, the embedded backend over
// HTTP, real Docker.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cronium-cli-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "cronium-orchestrator")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func cli(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestStandaloneSubmitFollowAndShutdown(t *testing.T) {
	testenv.Docker(t)
	sa, server, logs := startStandalone(t, "--docker-pull-policy", "never", "--docker-network-mode", "none")

	script := filepath.Join(t.TempDir(), "job.sh")
	os.WriteFile(script, []byte("echo \"hello from $(id -u)\"\necho oops >&2\nexit 3\n"), 0o644)
	out, errOut, code := cli(t, nil, "submit", "--server", server, "--follow", script)
	if code != 3 || out != "hello from 65534\n" || !strings.Contains(errOut, "oops") {
		t.Fatalf("exit %d stdout %q stderr %q\nlogs:\n%s", code, out, errOut, logs.String())
	}
	// Flags after the file work too; a timeout exits 124.
	os.WriteFile(script, []byte("sleep 30\n"), 0o644)
	if _, errOut, code := cli(t, nil, "submit", "--server", server, script, "--timeout", "1s", "--follow"); code != 124 {
		t.Fatalf("timeout: exit %d, stderr %q", code, errOut)
	}
	// Without --follow: the job id, exit 0.
	if out, _, code := cli(t, nil, "submit", "--server", server, script); code != 0 || !strings.HasPrefix(out, "job_") {
		t.Fatalf("submit: exit %d, %q", code, out)
	}

	if err := sa.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sa.Wait() }() // the cleanup's Wait then returns at once
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("standalone exited with %v after SIGTERM\nlogs:\n%s", err, logs.String())
		}
	case <-time.After(testenv.Patience): // the running job is stopped after the grace period (30s)
		t.Fatal("standalone did not exit after SIGTERM")
	}
}

// startStandalone runs the binary's standalone mode on free ports and
// returns it, the embedded backend's URL and its log output.
func startStandalone(t *testing.T, extra ...string) (*exec.Cmd, string, *testenv.SyncBuffer) {
	t.Helper()
	return startStandaloneIn(t, t.TempDir(), extra...)
}

// startStandaloneIn is startStandalone on the data directory data (its
// jobs, journal and orchestrator id), as a restarted process finds it.
func startStandaloneIn(t testing.TB, data string, extra ...string) (*exec.Cmd, string, *testenv.SyncBuffer) {
	t.Helper()
	args := append([]string{"standalone", "--listen", "127.0.0.1:0", "--data", data,
		"--http-listen", "", "--admin-listen", "", "--jobs-poll-interval", "100ms"}, extra...)
	sa := exec.Command(binary, args...)
	stdout, err := sa.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.SyncBuffer{}
	sa.Stderr = logs
	if err := sa.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sa.Process.Kill(); sa.Wait() })
	return sa, readServerURL(t, stdout), logs
}

func readServerURL(t testing.TB, r interface{ Read([]byte) (int, error) }) string {
	t.Helper()
	found := make(chan string, 1)
	// It reads until the process has exited (the cleanup's Wait closes
	// the pipe), so that the process never blocks on a full pipe.
	go func() {
		sc := bufio.NewScanner(r)
		re := regexp.MustCompile(`embedded backend\s+(http://\S+)`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case u := <-found:
		return u
	case <-time.After(testenv.Patience):
		t.Fatal("standalone printed no backend address")
		return ""
	}
}

func TestConfigErrors(t *testing.T) {
	state := "CRONIUM_ORCHESTRATOR_STATE_DIR=" + t.TempDir()
	tests := []struct {
		name     string
		env      []string
		args     []string
		code     int
		stdout   []string
		stderrRe string
	}{
		{name: "validate ok", env: []string{state, "CRONIUM_API_TOKEN=t"}, args: []string{"validate"},
			code: 0, stdout: []string{"configuration is valid"}},
		{name: "validate lists every problem", env: []string{state, "CRONIUM_JOBS_MAX_CONCURRENT=0"},
			args: []string{"validate", "--api-url", "localhost"}, code: 1,
			stdout: []string{"invalid: api.url", "invalid: api.token", "invalid: jobs.max_concurrent"}},
		{name: "validate names the source of unreadable values", env: []string{state, "CRONIUM_JOBS_STOP_GRACE=soon"},
			args: []string{"validate"}, code: 1, stdout: []string{"jobs.stop_grace (env CRONIUM_JOBS_STOP_GRACE)"}},
		{name: "run: one readable line, exit 2", env: []string{state}, args: []string{"run"}, code: 2,
			stderrRe: `^cronium-orchestrator run: invalid configuration: api.token: required[^\n]*\n$`},
		{name: "unknown command", args: []string{"fly"}, code: 2, stderrRe: `unknown command "fly"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := cli(t, append([]string{"CRONIUM_API_TOKEN=", "INTERNAL_API_KEY="}, tt.env...), tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout %q\nstderr %q", code, tt.code, out, errOut)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if tt.stderrRe != "" && !regexp.MustCompile(tt.stderrRe).MatchString(errOut) {
				t.Errorf("stderr %q does not match %s", errOut, tt.stderrRe)
			}
		})
	}
}

func TestSubmitOverSSH(t *testing.T) {
	a, b := testenv.StartSSHD(t, 0), testenv.StartSSHD(t, 0)
	if _, err := b.Exec("touch /tmp/fail"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, []byte(a.KnownHostsLine()+"\n"+b.KnownHostsLine()+"\n"), 0o600)
	keyFile := filepath.Join(dir, "id")
	os.WriteFile(keyFile, []byte(a.EncryptedKey), 0o600)

	_, server, logs := startStandalone(t, "--docker-enabled=false", "--ssh-known-hosts", known)
	script := filepath.Join(dir, "job.sh")
	os.WriteFile(script, []byte("if [ -e /tmp/fail ]; then exit 4; fi; echo \"hello from $(whoami)\"\n"), 0o644)

	tests := []struct {
		name   string
		env    []string
		args   []string
		code   int
		stdout string
	}{
		{name: "encrypted key", env: []string{"PASSPHRASE=" + a.Passphrase},
			args:   []string{"--ssh", a.User + "@" + a.Addr, "--ssh-key", keyFile, "--ssh-passphrase-env", "PASSPHRASE"},
			stdout: "hello from cronium\n"},
		{name: "password", env: []string{"SSH_PW=" + a.Password},
			args: []string{"--ssh", a.User + "@" + a.Addr, "--ssh-password-env", "SSH_PW"}, stdout: "hello from cronium\n"},
		{name: "multi-server partial", env: []string{"SSH_PW=" + a.Password},
			args: []string{"--ssh", a.User + "@" + a.Addr, "--ssh", b.User + "@" + b.Addr, "--ssh-password-env", "SSH_PW"},
			code: 101},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "multi-server partial" {
				// b has its own password: give both servers one.
				if _, err := b.Exec("echo '" + b.User + ":" + a.Password + "' | chpasswd"); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{"submit", "--server", server, "--follow"}, tt.args...)
			out, errOut, code := cli(t, tt.env, append(args, script)...)
			if code != tt.code || (tt.stdout != "" && out != tt.stdout) {
				t.Fatalf("exit %d stdout %q stderr %q\nlogs:\n%s", code, out, errOut, logs.String())
			}
		})
	}
}

// SIGTERM drains (the running job gets jobs.shutdown_grace); a second
// signal exits at once, with a non-zero code, without waiting for it.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	testenv.Docker(t)
	sa, server, logs := startStandalone(t, "--docker-pull-policy", "never", "--jobs-shutdown-grace", "5m")
	script := filepath.Join(t.TempDir(), "job.sh")
	os.WriteFile(script, []byte("echo started; sleep 300\n"), 0o644)
	out, _, code := cli(t, nil, "submit", "--server", server, script)
	if code != 0 {
		t.Fatalf("submit: %d", code)
	}
	id := strings.TrimSpace(out)
	// Exiting at once leaves the job's container behind, by design.
	t.Cleanup(func() {
		exec.Command("sh", "-c", "docker rm -f $(docker ps -aq --filter label=cronium.job-id="+id+")").Run()
	})
	testenv.Eventually(t, testenv.Patience, "the job to run", func() bool {
		return strings.Contains(logs.String(), `msg=executing`) && strings.Contains(logs.String(), id)
	})
	sa.Process.Signal(syscall.SIGTERM)
	testenv.Eventually(t, testenv.Patience, "the drain to start", func() bool {
		return strings.Contains(logs.String(), "draining")
	})
	start := time.Now()
	sa.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- sa.Wait() }()
	// Waiting for the job would take its 300s (the grace is 5m); exiting
	// at once takes well under a minute, however slow the machine.
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("second signal: exit %v, want 1", err)
		}
		t.Logf("exited %s after the second signal", time.Since(start).Round(time.Millisecond))
	case <-time.After(time.Minute):
		t.Fatal("a second SIGTERM did not end the process within a minute")
	}
}
