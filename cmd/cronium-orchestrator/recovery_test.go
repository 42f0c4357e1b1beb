package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/journal"
	"github.com/cronium/orchestrator/secret"
)

// gatedBackend is the embedded backend behind a gate the test controls:
// it can answer 503 to every internal call (the backend is down) and hold
// the next /complete until the caller is gone.
type gatedBackend struct {
	next http.Handler
	down atomic.Bool

	mu   sync.Mutex
	hold bool          // hold the next /complete
	held chan struct{} // closed when a /complete is being held
	// landAfter: a held /complete is applied once its caller is gone, as
	// a request that landed while its answer was lost.
	landAfter bool
	landed    chan struct{}
}

// holdNextComplete holds the next /complete; with land, it is applied
// once its caller is gone.
func (g *gatedBackend) holdNextComplete(land bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold, g.landAfter = true, land
}

func (g *gatedBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	internal := strings.HasPrefix(r.URL.Path, "/api/internal/")
	if internal && g.down.Load() {
		http.Error(w, `{"error":"down for the test"}`, http.StatusServiceUnavailable)
		return
	}
	g.mu.Lock()
	hold, land := g.hold && strings.HasSuffix(r.URL.Path, "/complete"), g.landAfter
	if hold {
		g.hold = false
	}
	g.mu.Unlock()
	if !hold {
		g.next.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	close(g.held)
	<-r.Context().Done() // the orchestrator is killed meanwhile
	if land {
		r2 := r.Clone(context.Background())
		r2.Body = io.NopCloser(bytes.NewReader(body))
		g.next.ServeHTTP(httptest.NewRecorder(), r2)
		close(g.landed)
	}
}

func secretOf(s string) secret.Value { return secret.Value(s) }

// hexOf is how the journal names a job's entry.
func hexOf(id string) string { return hex.EncodeToString([]byte(id)) }

type runHarness struct {
	t     *testing.T
	store *embedded.Store
	gate  *gatedBackend
	url   string
	token string
	state string
	proc  *exec.Cmd
	logs  *testenv.SyncBuffer
}

// newRunHarness serves the embedded backend behind a gate; start runs the
// binary's `run` against it, on one state directory across restarts.
func newRunHarness(t *testing.T) *runHarness {
	testenv.Docker(t)
	store, _, _ := daemontest.Backend(t)
	token := "test-token-recovery"
	g := &gatedBackend{next: embedded.NewServer(store, embedded.ServerOptions{Token: secretOf(token)}),
		held: make(chan struct{}), landed: make(chan struct{})}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return &runHarness{t: t, store: store, gate: g, url: srv.URL, token: token, state: t.TempDir()}
}

func (h *runHarness) start(extra ...string) {
	h.t.Helper()
	cmd := exec.Command(binary, append([]string{"run", "--api-url", h.url, "--orchestrator-state-dir", h.state,
		"--http-listen", "", "--admin-listen", "", "--jobs-poll-interval", "100ms",
		"--jobs-orphan-check-interval", "500ms", "--api-retry-max-elapsed", "2s",
		"--docker-pull-policy", "never", "--docker-network-mode", "none", "--logs-batch-interval", "100ms"}, extra...)...)
	cmd.Env = append(os.Environ(), "CRONIUM_API_TOKEN="+h.token)
	h.logs = &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = h.logs, h.logs
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.proc = cmd
	h.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testenv.Eventually(h.t, time.Minute, "the orchestrator to start", func() bool {
		return strings.Contains(h.logs.String(), "orchestrator started")
	})
}

func (h *runHarness) kill9() {
	h.t.Helper()
	h.proc.Process.Signal(syscall.SIGKILL)
	h.proc.Wait()
}

func (h *runHarness) submit(script string) string {
	h.t.Helper()
	id, err := h.store.Submit(h.t.Context(), embedded.SubmitRequest{
		Script: &backend.Script{Type: "BASH", Content: script}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		exec.Command("sh", "-c", "docker rm -f $(docker ps -aq --filter label=cronium.job-id="+id+")").Run()
	})
	return id
}

func (h *runHarness) job(id string) embedded.JobView {
	h.t.Helper()
	v, err := h.store.Job(h.t.Context(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return v
}

func (h *runHarness) waitRunning(id, line string) {
	h.t.Helper()
	testenv.Eventually(h.t, 2*time.Minute, "job "+id+" to run and ship "+line, func() bool {
		v := h.job(id)
		return v.Status == "running" && strings.Contains(v.Output.Stdout, line)
	})
}

// waitEnded waits for the job's terminal update, then for the orchestrator
// to have nothing left to send (its journal empty), so that a second
// terminal update would have been counted.
func (h *runHarness) waitEnded(id string) embedded.JobView {
	h.t.Helper()
	testenv.Eventually(h.t, 3*time.Minute, "job "+id+" to end", func() bool {
		return h.job(id).TerminalUpdates > 0
	})
	testenv.Eventually(h.t, time.Minute, "the journal to empty", func() bool {
		left, err := journal.Pending(filepath.Join(h.state, "jobs"))
		return err == nil && len(left) == 0
	})
	return h.job(id)
}

// The orchestrator is killed after the job's result is known and while its
// /complete is on its way (held): the restarted process sends it once,
// with the real result.
func TestKill9BeforeCompleteLanded(t *testing.T) {
	h := newRunHarness(t)
	h.gate.holdNextComplete(false)
	h.start()
	id := h.submit("echo done; exit 3")
	<-h.gate.held
	h.kill9()
	h.start()
	v := h.waitEnded(id)
	if v.Status != "failed" || v.TerminalUpdates != 1 || v.Output.Stdout != "done\n" ||
		v.Result.ExitCode == nil || *v.Result.ExitCode != 3 {
		t.Fatalf("status %s, %d terminal updates, exit %v, stdout %q\nlogs:\n%s",
			v.Status, v.TerminalUpdates, v.Result.ExitCode, v.Output.Stdout, h.logs.String())
	}
}

// As above, but the held /complete landed in the backend though its
// answer was lost: the restarted process asks and sends nothing more.
func TestKill9AfterCompleteLandedUnanswered(t *testing.T) {
	h := newRunHarness(t)
	h.gate.holdNextComplete(true)
	h.start()
	id := h.submit("echo done; exit 3")
	<-h.gate.held
	h.kill9()
	<-h.gate.landed
	h.start()
	v := h.waitEnded(id)
	if v.TerminalUpdates != 1 || v.Status != "failed" || v.Output.Stdout != "done\n" {
		t.Fatalf("status %s, %d terminal updates, stdout %q\nlogs:\n%s",
			v.Status, v.TerminalUpdates, v.Output.Stdout, h.logs.String())
	}
}

// Killed while the backend is down, and started again while it still is:
// once it is back, the job completes with its whole output.
func TestKill9WhileBackendDown(t *testing.T) {
	h := newRunHarness(t)
	h.start()
	id := h.submit(countedLines(40))
	h.waitRunning(id, "line 2\n")
	h.gate.down.Store(true)
	h.kill9()
	h.start()
	testenv.Eventually(t, time.Minute, "the recovery to meet the outage", func() bool {
		return strings.Contains(h.logs.String(), "job recovered from the journal")
	})
	h.gate.down.Store(false)
	v := h.waitEnded(id)
	if v.Status != "completed" || v.TerminalUpdates != 1 || v.Output.Stdout != wantLines(40) {
		t.Fatalf("status %s, %d terminal updates, stdout %q\nlogs:\n%s",
			v.Status, v.TerminalUpdates, v.Output.Stdout, h.logs.String())
	}
}

// A container that exited while no orchestrator ran: its status and the
// rest of its output are collected.
func TestRestartCollectsAJobThatExitedWhileDown(t *testing.T) {
	h := newRunHarness(t)
	starts := watchStarts(t)
	h.start()
	id := h.submit(countedLines(20) + "exit 7\n")
	h.waitRunning(id, "line 1\n")
	h.kill9()
	if out, err := exec.Command("sh", "-c", "docker wait $(docker ps -aq --filter label=cronium.job-id="+id+")").CombinedOutput(); err != nil {
		t.Fatalf("docker wait: %v: %s", err, out)
	}
	h.start()
	v := h.waitEnded(id)
	if v.Status != "failed" || v.Result.ExitCode == nil || *v.Result.ExitCode != 7 || v.Output.Stdout != wantLines(20) {
		t.Fatalf("status %s, exit %v, stdout %q\nlogs:\n%s", v.Status, v.Result.ExitCode, v.Output.Stdout, h.logs.String())
	}
	if n := starts.Count(id); n != 1 {
		t.Errorf("%d container starts, want 1", n)
	}
}

// A container removed while no orchestrator ran: the job fails saying so,
// and its script is not run again.
func TestRestartFailsAJobWhoseContainerWasRemoved(t *testing.T) {
	h := newRunHarness(t)
	starts := watchStarts(t)
	h.start()
	id := h.submit(countedLines(100))
	h.waitRunning(id, "line 1\n")
	h.kill9()
	if out, err := exec.Command("sh", "-c", "docker rm -f $(docker ps -aq --filter label=cronium.job-id="+id+")").CombinedOutput(); err != nil {
		t.Fatalf("docker rm: %v: %s", err, out)
	}
	h.start()
	v := h.waitEnded(id)
	if v.Status != "failed" || v.TerminalUpdates != 1 || !strings.Contains(v.Output.Stderr, "lost track of the job") ||
		!strings.Contains(v.Output.Stderr, "removed while no orchestrator followed it") ||
		strings.Contains(v.Output.Stderr, "ssh") || !strings.HasPrefix(v.Output.Stdout, "line 1\n") {
		t.Fatalf("status %s, stdout %q, stderr %q\nlogs:\n%s", v.Status, v.Output.Stdout, v.Output.Stderr, h.logs.String())
	}
	if n := starts.Count(id); n != 1 {
		t.Errorf("%d container starts, want 1: the script ran again", n)
	}
}

// SIGTERM with a job running past the grace: the process exits 0 leaving
// the job running; the next start re-attaches and the job completes with
// its whole output, in its one container.
func TestSIGTERMDetachesAndTheNextStartReattaches(t *testing.T) {
	h := newRunHarness(t)
	starts := watchStarts(t)
	h.start("--jobs-shutdown-grace", "500ms")
	id := h.submit(countedLines(60))
	h.waitRunning(id, "line 2\n")
	h.proc.Process.Signal(syscall.SIGTERM)
	if err := h.proc.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\nlogs:\n%s", err, h.logs.String())
	}
	if !strings.Contains(h.logs.String(), "leaving running jobs for the next start") {
		t.Fatalf("the job was not detached\nlogs:\n%s", h.logs.String())
	}
	if v := h.job(id); v.TerminalUpdates != 0 {
		t.Fatalf("the detached job was reported: %s", v.Status)
	}
	h.start()
	v := h.waitEnded(id)
	if v.Status != "completed" || v.TerminalUpdates != 1 || v.Output.Stdout != wantLines(60) {
		t.Fatalf("status %s, stdout %q\nlogs:\n%s", v.Status, v.Output.Stdout, h.logs.String())
	}
	if n := starts.Count(id); n != 1 {
		t.Errorf("%d container starts, want 1", n)
	}
}

// An upgrade from the journal's earlier layout, a file per job, with one
// file truncated: that job ends failed saying its record was unreadable;
// the other recovers from its file.
func TestTruncatedJournalEntry(t *testing.T) {
	h := newRunHarness(t)
	h.start()
	a, b := h.submit(countedLines(60)), h.submit(countedLines(60))
	h.waitRunning(a, "line 1\n")
	h.waitRunning(b, "line 1\n")
	h.kill9()
	dir := filepath.Join(h.state, "jobs")
	j, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	entries, _, err := j.Load()
	j.Close()
	if err != nil || len(entries) != 2 {
		t.Fatalf("journal: %d entries, %v", len(entries), err)
	}
	if err := os.Remove(filepath.Join(dir, "journal.log")); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if e.JobID == a {
			data = data[:len(data)/2]
		}
		if err := os.WriteFile(filepath.Join(dir, hexOf(e.JobID)+".json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	va, vb := h.waitEnded(a), h.waitEnded(b)
	if va.Status != "failed" || va.TerminalUpdates != 1 || !strings.Contains(va.Output.Stderr, "could not read its record") {
		t.Errorf("truncated: status %s, stderr %q", va.Status, va.Output.Stderr)
	}
	if vb.Status != "completed" || vb.TerminalUpdates != 1 || vb.Output.Stdout != wantLines(60) {
		t.Errorf("intact: status %s, stdout %q", vb.Status, vb.Output.Stdout)
	}
	if t.Failed() {
		t.Logf("logs:\n%s", h.logs.String())
	}
}

// The runtime helpers survive a kill -9: what the script set before is in
// the job's /complete, and its calls after the restart are served by the
// re-attached orchestrator with the credential it already held.
func TestKill9KeepsWhatTheScriptSet(t *testing.T) {
	h := newRunHarness(t)
	h.start()
	id := h.submit(`cronium_output '{"set": "before"}'
echo "line 1"
while [ ! -f /tmp/go ]; do sleep 0.1; done
cronium_setCondition true
echo "after: $(cronium_getCondition)"
`)
	h.waitRunning(id, "line 1\n")
	h.kill9()
	h.start()
	if out, err := exec.Command("sh", "-c", "docker exec $(docker ps -q --filter label=cronium.job-id="+id+
		") touch /tmp/go").CombinedOutput(); err != nil {
		t.Fatalf("docker exec: %v: %s", err, out)
	}
	v := h.waitEnded(id)
	if v.Status != "completed" || v.Output.Stdout != "line 1\nafter: true\n" || string(v.Result.ScriptOutput) != `{"set":"before"}` ||
		v.Result.Condition == nil || !*v.Result.Condition {
		t.Fatalf("status %s, stdout %q, stderr %q, output %s, condition %v\nlogs:\n%s", v.Status, v.Output.Stdout,
			v.Output.Stderr, v.Result.ScriptOutput, v.Result.Condition, h.logs.String())
	}
}
