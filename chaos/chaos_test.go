package chaos_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/secret"
)

// envInt reads a positive integer setting, or def.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// Peak memory the orchestrator may reach during the run.
const rssBound = 300 << 20

// TestChaos: CHAOS_JOBS mixed jobs (default 40 here; `make chaos` runs 500)
// under random faults drawn from CHAOS_SEED (default 1). Its last line is
// "chaos: J jobs, F faults, V violations"; any violation fails it. Without
// CHAOS_JOBS (the short run in make test) the SSH jobs and the SSH
// connection faults are left out (shortRunSkips).
func TestChaos(t *testing.T) {
	n, seed := envInt("CHAOS_JOBS", 40), uint64(envInt("CHAOS_SEED", 1))
	var skip map[fault]bool
	short := os.Getenv("CHAOS_JOBS") == "" // the short run inside make test
	if short {
		skip = shortRunSkips
	}
	testenv.Docker(t)
	sshd := testenv.StartSSHD(t, 0)
	dir := t.TempDir()
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, []byte(sshd.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := embedded.Open(filepath.Join(dir, "cronium.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	token := "chaos-token-" + randomHex(12)
	backend := newFaultyBackend(embedded.NewServer(store, embedded.ServerOptions{Token: secret.Value(token)}), seed, 4*time.Second)
	srv := httptest.NewServer(backend)
	t.Cleanup(srv.Close)

	id := "chaos-" + randomHex(4)
	t.Cleanup(func() {
		exec.Command("sh", "-c", "docker rm -f $(docker ps -aq --filter label=cronium.orchestrator-id="+id+") 2>/dev/null").Run()
	})
	httpAddr, adminAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	orch := &orchestrator{t: t, admin: "http://" + adminAddr, health: "http://" + httpAddr,
		env: []string{"CRONIUM_API_TOKEN=" + token},
		args: []string{"run", "--api-url", srv.URL, "--orchestrator-id", id, "--orchestrator-state-dir", filepath.Join(dir, "state"),
			"--http-listen", httpAddr, "--admin-listen", adminAddr, "--jobs-max-concurrent", "8",
			"--jobs-poll-interval", "200ms", "--jobs-orphan-check-interval", "5s", "--jobs-stop-grace", "2s",
			"--api-request-timeout", "3s", "--api-retry-max-elapsed", "1m", "--logs-batch-interval", "250ms",
			"--docker-pull-policy", "never", "--docker-network-mode", "none",
			"--ssh-known-hosts", known, "--ssh-keepalive-interval", "1s", "--ssh-keepalive-max-missed", "3",
			"--supervisor-max-restarts", "20", "--supervisor-backoff-initial", "200ms", "--supervisor-backoff-max", "2s",
			// What a job that failed mid-fault left behind is swept soon.
			"--docker-dangling-interval", "10s", "--docker-dangling-grace", "1m"}}
	starts := testenv.WatchStarts(t, testenv.Docker(t), "cronium.job-id")
	orch.start()
	t.Cleanup(func() { orch.proc.Process.Kill(); orch.proc.Wait() })
	sampling := make(chan struct{})
	go orch.sampleRSS(sampling)

	rng := rand.New(rand.NewPCG(seed, 1))
	jobSSH := sshd
	if short {
		jobSSH = nil // see shortRunSkips: SSH jobs run in make chaos
	}
	jobs := planJobs(n, rng, jobSSH)
	began := time.Now()
	for _, j := range jobs {
		if j.id, err = store.Submit(t.Context(), j.req); err != nil {
			t.Fatal(err)
		}
	}
	d := &driver{rng: rand.New(rand.NewPCG(seed, 2)), orch: orch, backend: backend, ssh: sshd,
		label: "cronium.orchestrator-id=" + id, skip: skip, done: map[fault]int{}, attempted: map[fault]int{}, killed: map[string]bool{}}
	// Faults go on while jobs run, for at most a share of the run.
	ctx, stopFaults := context.WithTimeout(t.Context(), time.Duration(30+n/2)*time.Second)
	driving := make(chan struct{})
	go func() { defer close(driving); d.run(ctx) }()

	var v violations
	ended := func() int {
		c := 0
		for _, j := range jobs {
			if jv, err := store.Job(t.Context(), j.id); err == nil && jv.TerminalUpdates > 0 {
				c++
			}
		}
		return c
	}
	waitFor(func() bool { return ended() == n || ctx.Err() != nil }, time.Duration(10+n)*time.Minute)
	stopFaults()
	<-driving
	faultsDone, faultsMissed, killed := d.counts()
	// Without faults every job ends; a loaded machine ends them slowly.
	// The verdict waits for progress, not for a deadline: only five
	// minutes in which no job ended is a violation.
	for done := ended(); done < n; {
		if !waitFor(func() bool { now := ended(); return now == n || now > done }, 5*time.Minute) {
			v.add("jobs", "%d of %d jobs never ended (none ended in the last 5 minutes)", n-done, n)
			break
		}
		done = ended()
	}
	wall := time.Since(began)

	outcomes := checkJobs(t, store, jobs, killed, starts, sshd, &v)
	checkNothingLeft(t, id, sshd, filepath.Join(dir, "state", "jobs"), &v)
	checkSecrets(t, orch, store, jobs, []string{token, sshd.Password}, &v)
	close(sampling)
	if peak := orch.peakRSS.Load(); peak > rssBound {
		v.add("memory", "peak RSS %d MiB above the bound of %d MiB", peak>>20, rssBound>>20)
	}
	if err := orch.stop(); err != nil {
		v.add("shutdown", "SIGTERM: %v", err)
	}

	totalFaults := 0
	for _, c := range faultsDone {
		totalFaults += c
	}
	logs := filepath.Join(os.TempDir(), id+".log")
	os.WriteFile(logs, []byte(orch.logs.String()), 0o600)
	var b strings.Builder
	fmt.Fprintf(&b, "\norchestrator logs: %s\n", logs)
	fmt.Fprintf(&b, "chaos run: seed %d, %d jobs, %s wall, orchestrator peak RSS %d MiB, %d starts of the orchestrator\n",
		seed, n, wall.Round(time.Second), orch.peakRSS.Load()>>20, orch.starts)
	fmt.Fprintf(&b, "%-42s %6s %8s\n", "fault", "done", "nothing")
	for _, m := range faultMix {
		if skip[m.f] {
			fmt.Fprintf(&b, "%-42s %15s\n", m.f, "not in this run")
			continue
		}
		fmt.Fprintf(&b, "%-42s %6d %8d\n", m.f, faultsDone[m.f], faultsMissed[m.f])
	}
	for mode, c := range backend.hits() {
		fmt.Fprintf(&b, "  backend calls hit by %-20s %6d\n", []string{"-", "failure", "stall", "slowdown"}[mode], c)
	}
	fmt.Fprintf(&b, "%-42s %6s\n", "job outcome", "jobs")
	keys := make([]string, 0, len(outcomes))
	for k := range outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%-42s %6d\n", k, outcomes[k])
	}
	for _, line := range v.lines {
		fmt.Fprintf(&b, "VIOLATION %s\n", line)
	}
	fmt.Fprintf(&b, "chaos: %d jobs, %d faults, %d violations\n", n, totalFaults, len(v.lines))
	fmt.Print(b.String())
	if len(v.lines) > 0 {
		t.Errorf("%d violations; the orchestrator's logs are in %s; their end:\n%s", len(v.lines), logs, tail(orch.logs.String(), 40))
	}
}

type violations struct{ lines []string }

func (v *violations) add(what, format string, args ...any) {
	v.lines = append(v.lines, what+": "+fmt.Sprintf(format, args...))
}

// waitFor polls ok until it holds or within passes.
func waitFor(ok func() bool, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
	return true
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func digest(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s)))[:16] }
