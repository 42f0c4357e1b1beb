package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"golang.org/x/crypto/ssh"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/secret"
)

// badEnv is a daemon against a faultyBackend, with its logs kept (JSON) for
// the test to read, its listeners on, and an HTTP server for HTTP_REQUEST
// jobs to call.
type badEnv struct {
	b      *faultyBackend
	d      *Daemon
	cfg    config.Config
	logs   *testenv.SyncBuffer
	target *httptest.Server
	// noDocker says why container jobs cannot run here (nil: they can).
	noDocker error

	mu   sync.Mutex
	hits map[string]int // requests the target got, by path
	ids  []string       // jobs whose terminal updates are counted at the end
}

// startBadEnv starts a daemon against a new faultyBackend; prepare runs
// before it starts (faults that must catch its first poll, jobs queued in
// advance). The daemon is shut down when the test ends, and every job
// noted by expectOnce must then have had exactly one terminal update.
func startBadEnv(t *testing.T, execs map[jobspec.Kind]executors.Executor, prepare func(*faultyBackend),
	opts ...stackOption) *badEnv {
	t.Helper()
	e := &badEnv{b: newFaultyBackend(t), logs: &testenv.SyncBuffer{}, hits: map[string]int{}}
	e.target = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.hits[r.URL.Path]++
		e.mu.Unlock()
		_, _ = io.WriteString(w, "alive\n")
	}))
	t.Cleanup(e.target.Close)
	if prepare != nil {
		prepare(e.b)
	}
	e.cfg = daemontest.Config(t, e.b.url, e.b.token, append([]stackOption{daemontest.Listeners}, opts...)...)
	var out io.Writer = e.logs
	if os.Getenv("TEST_LOGS") != "" {
		out = io.MultiWriter(e.logs, os.Stderr)
	}
	log := slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := New(e.cfg, Options{Logger: log, Executors: execs, AdminTimeout: testenv.Patience})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.d = d
	t.Cleanup(func() {
		if err := d.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		// Nothing of the daemon runs any more: a second terminal update
		// would have landed by now.
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, id := range e.ids {
			if v, err := e.b.store.Job(context.Background(), id); err != nil || v.TerminalUpdates != 1 {
				t.Errorf("job %s: %d terminal updates (%v), want exactly 1", id, v.TerminalUpdates, err)
			}
		}
	})
	return e
}

// dockerReady says why the real Docker executor cannot run jobs here, or
// nil. Unlike testenv.Docker it does not skip: only the cases that need
// Docker do.
func dockerReady() error {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		return fmt.Errorf("docker daemon not reachable: %w", err)
	}
	if _, err := cli.ImageInspect(ctx, config.Default().Docker.ImageBash); err != nil {
		return fmt.Errorf("image %s (run scripts/build-images.sh): %w", config.Default().Docker.ImageBash, err)
	}
	return nil
}

// submit queues req under name; rewrite, if any, changes the job in the
// queue answer that claims it.
func (e *badEnv) submit(t *testing.T, name string, req embedded.SubmitRequest, rewrite func(job map[string]any)) string {
	t.Helper()
	if rewrite != nil {
		e.b.set(func(f *faultyBackend) { f.rewrites[name] = rewrite })
	}
	req.Name = name
	id, err := e.b.store.Submit(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// expectOnce notes jobs whose terminal updates are counted at the end.
func (e *badEnv) expectOnce(ids ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ids = append(e.ids, ids...)
}

func (e *badEnv) hitsOf(path string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hits[path]
}

// wait returns the job once the orchestrator has sent its terminal update.
func (e *badEnv) wait(t *testing.T, id string) embedded.JobView {
	t.Helper()
	var v embedded.JobView
	testenv.Eventually(t, dockerPatience, "job "+id+" to end", func() bool {
		var err error
		v, err = e.b.store.Job(context.Background(), id)
		return err == nil && terminal(v.Status) && v.TerminalUpdates > 0
	})
	return v
}

// httpJob is an HTTP_REQUEST job calling the env's target at /path.
func (e *badEnv) httpJob(path string) embedded.SubmitRequest {
	return embedded.SubmitRequest{HTTP: &backend.HTTPRequest{Method: "GET", URL: e.target.URL + path}, Timeout: "1m"}
}

// alive checks that the orchestrator still works: /healthz answers, and a
// good job submitted now completes (a container job when container is set:
// the Docker executor works too).
func (e *badEnv) alive(t *testing.T, after string, container bool) {
	t.Helper()
	if code, body := testenv.Get(t, "http://"+e.d.HTTPAddr()+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after %s: %d %s", after, code, body)
	}
	name := "alive after " + after
	req := e.httpJob("/alive/" + t.Name())
	if container {
		req = script("BASH", "echo alive")
	}
	id := e.submit(t, name, req, nil)
	e.expectOnce(id)
	if v := e.wait(t, id); v.Status != "completed" || v.Output.Stdout != "alive\n" {
		t.Fatalf("a good job after %s: %s, stdout %q, stderr %q", after, v.Status, v.Output.Stdout, v.Output.Stderr)
	}
}

// logRecords are the daemon's log records at level or above whose text
// (message and attributes, as JSON) contains every fragment.
func (e *badEnv) logRecords(level slog.Level, fragments ...string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(e.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		var l slog.Level
		if s, _ := rec["level"].(string); l.UnmarshalText([]byte(s)) != nil || l < level {
			continue
		}
		found := true
		for _, f := range fragments {
			found = found && strings.Contains(line, f)
		}
		if found {
			out = append(out, rec)
		}
	}
	return out
}

// waitLogged waits for a log record at level or above with every fragment.
func (e *badEnv) waitLogged(t *testing.T, level slog.Level, fragments ...string) map[string]any {
	t.Helper()
	var recs []map[string]any
	testenv.Eventually(t, testenv.Patience, fmt.Sprintf("a %s log record with %q", level, fragments), func() bool {
		recs = e.logRecords(level, fragments...)
		return len(recs) > 0
	})
	return recs[0]
}

// silentServer accepts TCP connections and never says a word; it counts
// them.
type silentServer struct {
	addr  *net.TCPAddr
	mu    sync.Mutex
	conns []net.Conn
}

func startSilentServer(t *testing.T) *silentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentServer{addr: ln.Addr().(*net.TCPAddr)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			_ = c.Close()
		}
	})
	return s
}

func (s *silentServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// sshJobTo is a Bash job for the server at addr, with key.
func sshJobTo(addr *net.TCPAddr, key string) embedded.SubmitRequest {
	return embedded.SubmitRequest{Script: &backend.Script{Type: "BASH", Content: "echo hi"}, Timeout: "1m",
		Servers: []embedded.ServerSpec{{Name: "web-01", Host: addr.IP.String(), Port: addr.Port, Username: "deploy",
			PrivateKey: secret.Value(key)}}}
}

// newKey is an OpenSSH ed25519 private key, encrypted with passphrase
// unless it is empty.
func newKey(t *testing.T, passphrase string) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block))
}

// emptyKnownHosts is a known_hosts file that lists no server.
func emptyKnownHosts(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// execOf is the "execution" of a job in a queue answer.
func execOf(job map[string]any) map[string]any {
	ex, _ := job["execution"].(map[string]any)
	return ex
}
