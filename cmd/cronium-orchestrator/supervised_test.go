package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
)

// Under a process supervisor, a token the backend rejects is fatal at
// once: one readable line, a non-zero exit, and the token nowhere.
func TestRunExitsWhenTheBackendRejectsTheToken(t *testing.T) {
	store, _, _ := daemontest.Backend(t)
	srv := httpServe(t, "127.0.0.1:0", embedded.NewServer(store, embedded.ServerOptions{Token: secretOf("the-right-token")}))
	out, errOut, code := cli(t, []string{"CRONIUM_API_TOKEN=a-rotated-token-1234"}, "run", "--api-url", "http://"+srv,
		"--orchestrator-state-dir", t.TempDir(), "--http-listen", "", "--admin-listen", "", "--docker-enabled=false")
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout %q\nstderr %q", code, out, errOut)
	}
	re := regexp.MustCompile(`^cronium-orchestrator run: the backend rejects the API token \(401 Unauthorized\)[^\n]*\n$`)
	if !re.MatchString(errOut) {
		t.Errorf("stderr is not one readable line: %q", errOut)
	}
	if strings.Contains(out+errOut, "a-rotated-token-1234") {
		t.Error("the token was printed")
	}
}

// An unreachable backend is said at once at WARN, again while it lasts,
// and /readyz names it; once the backend answers the orchestrator says so,
// is ready, and a SIGTERM exits 0.
func TestRunSaysAtOnceThatTheBackendIsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there until the backend "comes up"

	cmd := exec.Command(binary, "run", "--api-url", "http://"+addr, "--orchestrator-state-dir", t.TempDir(),
		"--http-listen", "127.0.0.1:0", "--admin-listen", "", "--docker-enabled=false", "--jobs-poll-interval", "200ms")
	cmd.Env = append(cmd.Environ(), "CRONIUM_API_TOKEN=test-token-unreachable")
	logs := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	testenv.Eventually(t, testenv.Patience, "a WARN that the backend is not reachable", func() bool {
		return strings.Contains(logs.String(), `level=WARN msg="backend not reachable`)
	})
	testenv.Eventually(t, testenv.Patience, "the warning to be repeated", func() bool {
		return strings.Contains(logs.String(), "failed_probes=2")
	})
	health := "http://" + listenAddr(t, logs, "metrics and health")
	if code, body := get(t, health+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "backend: not ready") {
		t.Fatalf("/readyz: %d %q", code, body)
	}

	store, _, _ := daemontest.Backend(t)
	httpServe(t, addr, embedded.NewServer(store, embedded.ServerOptions{Token: secretOf("test-token-unreachable")}))
	testenv.Eventually(t, testenv.Patience, "the orchestrator to see the backend again", func() bool {
		return strings.Contains(logs.String(), "backend reachable again")
	})
	if code, body := get(t, health+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with the backend up: %d %q", code, body)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Fatalf("SIGTERM: %v\nlogs:\n%s", err, logs.String())
		}
	case <-time.After(testenv.Patience):
		t.Fatal("no exit after SIGTERM")
	}
}

// httpServe serves h on addr until the test ends and returns the address.
func httpServe(t *testing.T, addr string, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// listenAddr is where the daemon says it listens for what.
func listenAddr(t *testing.T, logs *testenv.SyncBuffer, what string) string {
	t.Helper()
	re := regexp.MustCompile(`msg=listening .*serving="` + regexp.QuoteMeta(what) + `" addr=(\S+)`)
	var addr string
	testenv.Eventually(t, testenv.Patience, "the listener to be bound", func() bool {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
			return true
		}
		return false
	})
	return addr
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
