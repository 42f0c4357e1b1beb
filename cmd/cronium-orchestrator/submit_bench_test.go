package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/internal/testenv"
)

// BenchmarkSubmitFollow is what a user waits for: `submit --follow` of
// "echo hi" against a running standalone orchestrator (default
// configuration, no registry), from the command's start to its exit with
// the output shown. The baseline, in the same run and alternating with it,
// is `docker run --rm` of the same image, user and command. Both are
// medians (ms/job, docker-run-ms/job).
//
//	go test -run '^$' -bench SubmitFollow -benchtime 20x ./cmd/cronium-orchestrator/
func BenchmarkSubmitFollow(b *testing.B) {
	cli := testenv.Docker(b)
	def := config.Default().Docker
	if _, err := cli.ImageInspect(b.Context(), def.ImageBash); err != nil {
		testenv.Unavailable(b, "image %s (make images): %v", def.ImageBash, err)
	}
	_, server, _ := startStandaloneIn(b, b.TempDir(), "--docker-pull-policy", "never")
	script := filepath.Join(b.TempDir(), "hi.sh")
	if err := os.WriteFile(script, []byte("echo hi\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	timed := func(name string, args ...string) time.Duration {
		start := time.Now()
		out, err := exec.Command(name, args...).Output()
		d := time.Since(start)
		if err != nil || strings.TrimSpace(string(out)) != "hi" {
			b.Fatalf("%s %v: %q %v", name, args, out, err)
		}
		return d
	}
	var follow, run []time.Duration
	b.ResetTimer()
	for range b.N {
		follow = append(follow, timed(binary, "submit", "--server", server, "--follow", script))
		b.StopTimer()
		run = append(run, timed("docker", "run", "--rm", "--user", def.User, def.ImageBash, "bash", "-c", "echo hi"))
		b.StartTimer()
	}
	b.StopTimer()
	median := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2]) / float64(time.Millisecond)
	}
	b.ReportMetric(median(follow), "ms/job")
	b.ReportMetric(median(run), "docker-run-ms/job")
}
