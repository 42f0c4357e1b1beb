package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/orchestrator/internal/testenv"
)

// BenchmarkRecoveryOf20RunningJobs: 20 container jobs run when the
// orchestrator is killed with SIGKILL; each iteration measures from the
// restarted process's start to the last job re-attached to its container
// (ms/recovery), and, as the baseline in the same run, to the process
// saying it started (ms/start): what recovery adds is the difference.
func BenchmarkRecoveryOf20RunningJobs(b *testing.B) {
	testenv.Docker(b)
	const jobs = 20
	data := b.TempDir()
	flags := []string{"--docker-pull-policy", "never", "--docker-network-mode", "none", "--jobs-max-concurrent", "25"}
	sa, server, _ := startStandaloneIn(b, data, flags...)
	dir := b.TempDir()
	var ids []string
	for range jobs {
		path := filepath.Join(dir, fmt.Sprintf("job-%d.sh", len(ids)))
		os.WriteFile(path, []byte("while :; do echo tick; sleep 1; done\n"), 0o644)
		out, err := exec.Command(binary, "submit", "--server", server, "--timeout", "1h", path).Output()
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, strings.TrimSpace(string(out)))
	}
	b.Cleanup(func() {
		exec.Command("sh", "-c", "docker rm -f $(docker ps -aq --filter label=cronium.orchestrator-id)").Run()
	})
	waitAllRunning := func(server string) {
		testenv.Eventually(b, 5*time.Minute, "every job running", func() bool {
			for _, id := range ids {
				v, ok := getJob(server, id)
				if !ok || v.Status != "running" || !strings.Contains(v.Output.Stdout, "tick") {
					return false
				}
			}
			return true
		})
	}
	waitAllRunning(server)
	var total, started time.Duration
	b.ResetTimer()
	for range b.N {
		sa.Process.Signal(syscall.SIGKILL)
		sa.Wait()
		start := time.Now()
		var logs *testenv.SyncBuffer
		sa, server, logs = startStandaloneIn(b, data, flags...)
		var up time.Duration
		testenv.Eventually(b, 5*time.Minute, "every job re-attached", func() bool {
			l := logs.String()
			if up == 0 && strings.Contains(l, `msg="orchestrator started"`) {
				up = time.Since(start)
			}
			return strings.Count(l, `msg="resuming container"`) >= jobs
		})
		total += time.Since(start)
		started += up
		b.StopTimer()
		waitAllRunning(server)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/recovery")
	b.ReportMetric(float64(started.Milliseconds())/float64(b.N), "ms/start")
}
