package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
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
)

// replica is one `run` process with its own id and state directory. It
// reaches the shared backend through a door of its own, so that the test
// knows which replica made each call.
type replica struct {
	id, state, url string
	proc           *exec.Cmd
	logs           *testenv.SyncBuffer

	mu      sync.Mutex
	polls   int
	claimed map[string]bool // job ids its polls returned
	touched map[string]bool // job ids named in its other calls
}

// jobInPath finds the job a call concerns: /jobs/{id}/... or an execution
// id, which the orchestrator makes from the job id (exec_<job id>_...).
var jobInPath = regexp.MustCompile(`/jobs/([^/]+)/|/executions/exec_(job_[A-Za-z0-9]+)_`)

func (r *replica) door(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/api/internal/jobs/queue" {
			if m := jobInPath.FindStringSubmatch(req.URL.Path); m != nil {
				r.mu.Lock()
				r.touched[m[1]+m[2]] = true
				r.mu.Unlock()
			}
			next.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, req)
		var body struct {
			Jobs []struct{ ID string } `json:"jobs"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		r.mu.Lock()
		r.polls++
		for _, j := range body.Jobs {
			r.claimed[j.ID] = true
		}
		r.mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}

func (r *replica) counts() (polls int, claimed map[string]bool, touched map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, tc := map[string]bool{}, map[string]bool{}
	for k := range r.claimed {
		c[k] = true
	}
	for k := range r.touched {
		tc[k] = true
	}
	return r.polls, c, tc
}

func (r *replica) start(t *testing.T, token string) {
	t.Helper()
	cmd := exec.Command(binary, "run", "--api-url", r.url, "--orchestrator-id", r.id, "--orchestrator-state-dir", r.state,
		"--http-listen", "", "--admin-listen", "", "--jobs-max-concurrent", "4", "--jobs-poll-interval", "100ms",
		"--jobs-orphan-check-interval", "0", "--api-retry-max-elapsed", "5s", "--logs-batch-interval", "100ms",
		"--docker-pull-policy", "never", "--docker-network-mode", "none")
	cmd.Env = append(os.Environ(), "CRONIUM_API_TOKEN="+token)
	r.logs = &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = r.logs, r.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.proc = cmd
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

func startReplicas(t *testing.T, n int) (*embedded.Store, []*replica, string) {
	store, _, _ := daemontest.Backend(t)
	token := "test-token-replicas"
	api := embedded.NewServer(store, embedded.ServerOptions{Token: secretOf(token)})
	var rs []*replica
	for i := range n {
		r := &replica{id: fmt.Sprintf("replica-%d", i+1), state: t.TempDir(), claimed: map[string]bool{}, touched: map[string]bool{}}
		srv := httptest.NewServer(r.door(api))
		t.Cleanup(srv.Close)
		r.url = srv.URL
		r.start(t, token)
		rs = append(rs, r)
	}
	// Every replica polls before any job is queued: none starts late.
	testenv.Eventually(t, testenv.Patience, "every replica to poll", func() bool {
		for _, r := range rs {
			if p, _, _ := r.counts(); p == 0 {
				return false
			}
		}
		return true
	})
	return store, rs, token
}

// slowTarget answers HTTP jobs after a fixed delay and counts how many
// requests it serves at once.
type slowTarget struct {
	delay          time.Duration
	inFlight, peak atomic.Int64
}

func (s *slowTarget) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	n := s.inFlight.Add(1)
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(s.delay)
	s.inFlight.Add(-1)
	fmt.Fprintln(w, "done")
}

// Three replicas against one backend share 300 HTTP jobs: each job is
// claimed by one replica and completed once, every replica takes a share,
// and more than one replica's capacity works at once (the backend's
// conditional claim is all that coordinates them). One replica on 100 jobs
// first gives the throughput the three are compared with (logged: the
// verdict rests on what was observed, not on the machine's speed).
func TestReplicasShareTheQueue(t *testing.T) {
	const capacity = 4
	target := &slowTarget{delay: 100 * time.Millisecond}
	ts := httptest.NewServer(target)
	t.Cleanup(ts.Close)

	one, _ := shareQueue(t, 1, 100, ts.URL)
	target.peak.Store(0)
	three, rs := shareQueue(t, 3, 300, ts.URL)
	owner := map[string]string{}
	for _, r := range rs {
		_, claimed, touched := r.counts()
		if len(claimed) < 300/10 {
			t.Errorf("%s claimed %d of 300 jobs: the work is not spread", r.id, len(claimed))
		}
		for id := range claimed {
			if o, dup := owner[id]; dup {
				t.Errorf("job %s claimed by %s and %s", id, o, r.id)
			}
			owner[id] = r.id
		}
		for id := range touched {
			if !claimed[id] {
				t.Errorf("%s made a call about job %s, which it never claimed", r.id, id)
			}
		}
		t.Logf("%s: %d jobs", r.id, len(claimed))
	}
	if p := target.peak.Load(); p <= capacity {
		t.Errorf("at most %d requests at once: no more than one replica's capacity (%d) worked at a time", p, capacity)
	}
	t.Logf("1 replica: %.0f jobs/s; 3 replicas: %.0f jobs/s (%.2fx); capacity %d each, target delay %s, peak %d requests at once",
		one, three, three/one, capacity, target.delay, target.peak.Load())
}

// shareQueue runs n replicas against a new backend, submits jobs HTTP jobs
// to url, waits for all to end and checks each was claimed once and ended
// once by its claimer. It returns the jobs per second.
func shareQueue(t *testing.T, n, jobs int, url string) (float64, []*replica) {
	t.Helper()
	store, rs, _ := startReplicas(t, n)
	start := time.Now()
	ids := make([]string, jobs)
	for i := range ids {
		id, err := store.Submit(t.Context(), embedded.SubmitRequest{HTTP: &backend.HTTPRequest{Method: "GET", URL: url}})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	testenv.Eventually(t, 5*time.Minute, "every job to end", func() bool {
		list, err := store.List(t.Context(), "", jobs+1)
		if err != nil {
			return false
		}
		done := 0
		for _, v := range list {
			if v.TerminalUpdates > 0 {
				done++
			}
		}
		return done == jobs
	})
	rate := float64(jobs) / time.Since(start).Seconds()
	owner := map[string]string{}
	for _, r := range rs {
		_, claimed, _ := r.counts()
		for id := range claimed {
			owner[id] = r.id
		}
	}
	for _, id := range ids {
		v, err := store.Job(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != "completed" || v.TerminalUpdates != 1 || owner[id] == "" || v.OrchestratorID != owner[id] {
			t.Errorf("job %s: %s, %d terminal updates, claimed by %q, owner %q", id, v.Status, v.TerminalUpdates, owner[id], v.OrchestratorID)
		}
	}
	for _, r := range rs { // the next round's replicas work alone
		r.proc.Process.Kill()
		r.proc.Wait()
	}
	return rate, rs
}

// One replica is killed with -9 while its jobs run and started again with
// its id and state directory: it re-attaches to its own jobs, which
// complete once with their full output, and makes no call about another
// replica's jobs; the others' jobs complete undisturbed.
func TestReplicaKilledRecoversOnlyItsOwnJobs(t *testing.T) {
	cli := testenv.Docker(t)
	starts := testenv.WatchStarts(t, cli, "cronium.job-id")
	store, rs, token := startReplicas(t, 3)
	const perReplica = 4 // --jobs-max-concurrent: 12 long jobs fill every replica
	var ids []string
	for range 3 * perReplica {
		id, err := store.Submit(t.Context(), embedded.SubmitRequest{Script: &backend.Script{Type: "BASH",
			Content: "echo start; sleep 8; echo end\n"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		t.Cleanup(func() {
			exec.Command("sh", "-c", "docker rm -f $(docker ps -aq --filter label=cronium.job-id="+id+")").Run()
		})
	}
	victim := rs[1]
	var victims map[string]bool
	testenv.Eventually(t, testenv.Patience, victim.id+" to run its share", func() bool {
		_, victims, _ = victim.counts()
		if len(victims) != perReplica {
			return false
		}
		for id := range victims {
			if v, err := store.Job(t.Context(), id); err != nil || !strings.Contains(v.Output.Stdout, "start") {
				return false
			}
		}
		return true
	})
	victim.proc.Process.Signal(syscall.SIGKILL)
	victim.proc.Wait()
	victim.mu.Lock()
	victim.touched = map[string]bool{} // from here on: the restarted process's calls
	victim.mu.Unlock()
	victim.start(t, token)

	testenv.Eventually(t, 3*time.Minute, "every job to end", func() bool {
		for _, id := range ids {
			if v, err := store.Job(t.Context(), id); err != nil || v.TerminalUpdates == 0 {
				return false
			}
		}
		return true
	})
	_, _, touched := victim.counts()
	for id := range touched {
		if !victims[id] {
			t.Errorf("the restarted %s made a call about job %s, which is not its own", victim.id, id)
		}
	}
	for id := range victims {
		if !touched[id] {
			t.Errorf("the restarted %s did not recover its job %s", victim.id, id)
		}
	}
	for _, id := range ids {
		v, _ := store.Job(t.Context(), id)
		if v.Status != "completed" || v.TerminalUpdates != 1 || v.Output.Stdout != "start\nend\n" {
			t.Errorf("job %s (victim's: %v): %s, %d terminal updates, stdout %q", id, victims[id], v.Status, v.TerminalUpdates, v.Output.Stdout)
		}
		if n := starts.Count(id); n != 1 {
			t.Errorf("job %s's container started %d times", id, n)
		}
	}
	if t.Failed() {
		t.Logf("victim's logs:\n%s", victim.logs.String())
	}
}
