package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/journal"
)

// countedLines prints "line 1".."line n", one every 200 ms.
func countedLines(n int) string {
	return fmt.Sprintf("for i in $(seq 1 %d); do echo \"line $i\"; sleep 0.2; done\n", n)
}

func wantLines(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

// getJob reads the job from the public API; ok is false while the
// process is being restarted.
func getJob(server, id string) (embedded.JobView, bool) {
	resp, err := http.Get(server + "/api/jobs/" + id)
	if err != nil {
		return embedded.JobView{}, false
	}
	defer resp.Body.Close()
	var v embedded.JobView
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return embedded.JobView{}, false
	}
	return v, true
}

func submitScript(t *testing.T, server, dir, script string) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("job-%d.sh", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cli(t, nil, "submit", "--server", server, path)
	if code != 0 {
		t.Fatalf("submit: exit %d: %s", code, errOut)
	}
	return strings.TrimSpace(out)
}

// watchStarts counts the starts of job containers from now on, by job id.
func watchStarts(t *testing.T) *testenv.Starts {
	return testenv.WatchStarts(t, testenv.Docker(t), "cronium.job-id")
}

// TestKill9ResumesRunningJobs: the orchestrator is killed with SIGKILL ten
// times while container jobs run, and started again on the same state each
// time. Every job completes once, with its whole output byte for byte, in
// the one container it was started in.
func TestKill9ResumesRunningJobs(t *testing.T) {
	testenv.Docker(t)
	data := t.TempDir()
	starts := watchStarts(t)
	flags := []string{"--docker-pull-policy", "never", "--docker-network-mode", "none"}
	sa, server, logs := startStandaloneIn(t, data, flags...)
	const jobs, lines = 3, 150 // 30 s of output each
	ids := make([]string, jobs)
	for i := range ids {
		ids[i] = submitScript(t, server, t.TempDir(), countedLines(lines))
	}
	t.Cleanup(func() {
		for _, id := range ids {
			exec.Command("sh", "-c", "docker rm -f $(docker ps -aq --filter label=cronium.job-id="+id+")").Run()
		}
	})
	running := func() bool {
		for _, id := range ids {
			if v, ok := getJob(server, id); !ok || v.Status != "running" || !strings.Contains(v.Output.Stdout, "line") {
				return false
			}
		}
		return true
	}
	const kills = 10
	for k := range kills {
		// Killed while every job runs and has shipped output: after a
		// restart, once the output has grown past what it had.
		testenv.Eventually(t, 2*time.Minute, fmt.Sprintf("the jobs to run before kill %d", k+1), running)
		if err := sa.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		sa.Wait()
		sa, server, logs = startStandaloneIn(t, data, flags...)
	}
	for _, id := range ids {
		var v embedded.JobView
		testenv.Eventually(t, 3*time.Minute, "job "+id+" to finish", func() bool {
			var ok bool
			v, ok = getJob(server, id)
			return ok && v.Output.Final
		})
		want := wantLines(lines)
		if v.Status != "completed" || v.Output.Stdout != want || v.TerminalUpdates != 1 {
			t.Errorf("job %s: status %s, %d terminal updates, stdout sha256 %x (want %x), %d bytes; stderr %q\nlogs:\n%s",
				id, v.Status, v.TerminalUpdates, sha256.Sum256([]byte(v.Output.Stdout)), sha256.Sum256([]byte(want)),
				len(v.Output.Stdout), v.Output.Stderr, logs.String())
		}
		if n := starts.Count(id); n != 1 {
			t.Errorf("job %s: %d container starts, want 1", id, n)
		}
	}
	if t.Failed() {
		return
	}
	// The journal empties once every job has ended: each entry goes after
	// the backend has the completion and the job's container is removed.
	testenv.Eventually(t, time.Minute, "an empty journal", func() bool {
		left, err := journal.Pending(filepath.Join(data, "state", "jobs"))
		return err == nil && len(left) == 0
	})
}
