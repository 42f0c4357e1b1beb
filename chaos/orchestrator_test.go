package chaos_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/orchestrator/admin"
	"github.com/cronium/orchestrator/internal/testenv"
)

// orchestrator is the `run` process under test, started again on the same
// id and state directory after each kill. logs keeps every process's output.
type orchestrator struct {
	t      *testing.T
	args   []string
	env    []string
	admin  string // http://host:port of the admin API
	health string // http://host:port of /metrics

	mu      sync.Mutex
	proc    *exec.Cmd
	logs    testenv.SyncBuffer
	starts  int
	peakRSS atomic.Int64 // bytes, sampled
}

func (o *orchestrator) start() {
	o.t.Helper()
	o.mu.Lock()
	cmd := exec.Command(binary, o.args...)
	cmd.Env = append(os.Environ(), o.env...)
	cmd.Stdout, cmd.Stderr = &o.logs, &o.logs
	if err := cmd.Start(); err != nil {
		o.mu.Unlock()
		o.t.Fatal(err)
	}
	o.proc = cmd
	o.starts++
	n := o.starts
	o.mu.Unlock()
	testenv.Eventually(o.t, testenv.Patience, "the orchestrator to start", func() bool {
		return strings.Count(o.logs.String(), `msg="orchestrator started"`) >= n
	})
}

// kill9 kills the process and starts it again.
func (o *orchestrator) kill9() {
	o.mu.Lock()
	p := o.proc
	o.mu.Unlock()
	p.Process.Signal(syscall.SIGKILL)
	p.Wait()
	o.start()
}

// stop sends SIGTERM and waits for the exit; it reports the exit error.
func (o *orchestrator) stop() error {
	o.mu.Lock()
	p := o.proc
	o.mu.Unlock()
	p.Process.Signal(syscall.SIGTERM)
	return p.Wait()
}

// sampleRSS records the process's resident memory until stop is closed.
func (o *orchestrator) sampleRSS(stop <-chan struct{}) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		o.mu.Lock()
		pid := o.proc.Process.Pid
		o.mu.Unlock()
		if rss := rssOf(pid); rss > o.peakRSS.Load() {
			o.peakRSS.Store(rss)
		}
	}
}

func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// jobActors lists the job and log actors the admin API shows.
func (o *orchestrator) jobActors() []string {
	resp, err := http.Get(o.admin + "/api/actors")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var tree struct {
		Actors []struct {
			PID   string `json:"pid"`
			JobID string `json:"jobId"`
		} `json:"actors"`
	}
	if json.NewDecoder(resp.Body).Decode(&tree) != nil {
		return nil
	}
	var pids []string
	for _, a := range tree.Actors {
		if a.JobID != "" {
			pids = append(pids, a.PID)
		}
	}
	return pids
}

// actorAction posts kill or crash for pid; it reports whether it was done.
func (o *orchestrator) actorAction(action, pid string) bool {
	req, err := http.NewRequest(http.MethodPost, o.admin+"/api/actors/"+action+"/"+pid, nil)
	if err != nil {
		return false
	}
	req.Header.Set(admin.CSRFHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// get returns a page of the orchestrator's listeners ("" when it fails).
func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}
