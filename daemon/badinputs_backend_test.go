package daemon

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/executors/fake"
	"github.com/cronium/orchestrator/executors/httpreq"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
)

// The cases of TestBadInputs where the backend misbehaves (15-19): each
// runs a daemon of its own, against a faultyBackend, with the scripted
// fake executor.

// backendFaultOpts: the client gives up on a call quickly, polls back off
// to at most 400ms, orphans are checked often.
func backendFaultOpts(c *config.Config) {
	c.API.RetryMaxElapsed = 300 * time.Millisecond
	c.Jobs.PollMaxBackoff = 400 * time.Millisecond
	c.Jobs.OrphanCheckInterval = 300 * time.Millisecond
}

func fakeExecutors() (map[jobspec.Kind]executors.Executor, *fake.Executor) {
	f := fake.New()
	return map[jobspec.Kind]executors.Executor{jobspec.KindContainer: f, jobspec.KindHTTP: httpreq.New(nil)}, f
}

// backendFault: a backend with a fault (everyCall, or truncated queue
// answers when it is nil) and a job queued during it; the fault is there
// when the daemon starts, or comes after (rotated: a token rotated while
// it runs; a token refused at start-up is fatal, see backendwatch.go).
// The daemon must log the fault (at WARN or above, with fragment), say on
// /readyz that the backend is not ready (when readyz), and back off; once
// the backend recovers, the job runs once and a good job after it too.
func backendFault(t *testing.T, name string, everyCall func(http.ResponseWriter, *http.Request) bool, rotated, readyz bool,
	fragment string) func(*testing.T) {
	execs, f := fakeExecutors()
	fault := func(b *faultyBackend) { b.everyCall, b.truncate = everyCall, everyCall == nil }
	job := embedded.SubmitRequest{Name: "queued during fault " + name, Script: &backend.Script{Type: "BASH", Content: "x"},
		Environment: map[string]string{"FAKE_STDOUT": "ran\n"}}
	var id string
	var err error
	e := startBadEnv(t, execs, func(b *faultyBackend) {
		if !rotated {
			fault(b)
			id, err = b.store.Submit(t.Context(), job)
		}
	}, backendFaultOpts)
	if rotated {
		e.b.set(fault)
		id, err = e.b.store.Submit(t.Context(), job)
	}
	if err != nil {
		t.Fatal(err)
	}
	return func(t *testing.T) {
		e.expectOnce(id)
		e.waitLogged(t, slog.LevelWarn, fragment)
		if readyz {
			url := "http://" + e.d.HTTPAddr() + "/readyz"
			if code, body := testenv.Get(t, url); code != http.StatusServiceUnavailable ||
				!strings.Contains(body, "backend: not ready") || !strings.Contains(body, fragment) {
				t.Fatalf("/readyz during the fault: %d %q", code, body)
			}
		}
		// A poller that hammers a failing backend polls again at once;
		// this one waits at least twice the poll interval (the first
		// backoff step) between failed polls. Only a lower bound: a slow
		// machine makes the gaps longer, never shorter.
		start := e.b.Polls()
		testenv.Eventually(t, testenv.Patience, "four failed polls", func() bool { return e.b.Polls() >= start+4 })
		e.b.set(func(b *faultyBackend) { b.everyCall, b.truncate = nil, false })
		times := e.b.PollTimes()[start:]
		for i := 1; i < len(times); i++ {
			if gap := times[i].Sub(times[i-1]); gap < 2*e.cfg.Jobs.PollInterval {
				t.Fatalf("failed polls %v apart: no backoff", gap)
			}
		}
		if v := e.wait(t, id); v.Status != "completed" || v.Output.Stdout != "ran\n" || f.Starts() != 1 {
			t.Fatalf("the job queued during the fault: %s, stdout %q, started %d times", v.Status, v.Output.Stdout, f.Starts())
		}
		if readyz {
			testenv.Eventually(t, testenv.Patience, "/readyz to recover", func() bool {
				code, _ := testenv.Get(t, "http://"+e.d.HTTPAddr()+"/readyz")
				return code == http.StatusOK
			})
		}
		e.alive(t, "the backend recovered", false)
	}
}

// giantBatch: a poll for 2 jobs is answered with 10,000: the 4 the backend
// claims (it was asked for 4), 9,995 synthetic ones and the first job once
// more. The orchestrator must run at most 2 at once, hand every other one
// back exactly once (not the one it runs, whatever the answer says), and
// run each real job exactly once in the end.
func giantBatch(t *testing.T, _ *badEnv) func(*testing.T) {
	const real, answered = 4, 10000
	const ghosts = answered - real - 1
	execs, f := fakeExecutors()
	var ids []string
	e := startBadEnv(t, execs, func(b *faultyBackend) {
		for i := range real {
			id, err := b.store.Submit(t.Context(), embedded.SubmitRequest{Name: fmt.Sprintf("real %d", i),
				Script: &backend.Script{Type: "BASH", Content: "x"},
				// Long enough to overlap, so that running more than 2 at
				// once would show.
				Environment: map[string]string{"FAKE_STDOUT": "ran\n", "FAKE_SLEEP": "300ms"}})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		b.batch, b.ghosts = real, ghosts
	}, backendFaultOpts, func(c *config.Config) { c.Jobs.MaxConcurrent = 2 })
	return func(t *testing.T) {
		e.expectOnce(ids...)
		for _, id := range ids {
			if v := e.wait(t, id); v.Status != "completed" || len(v.Executions) != 1 {
				t.Fatalf("job %s: %s, %d executions", id, v.Status, len(v.Executions))
			}
		}
		testenv.Eventually(t, testenv.Patience, "every synthetic job to be released", func() bool {
			return e.b.GhostAsked() >= ghosts
		})
		calls := e.b.GhostCalls()
		if len(calls) != ghosts {
			t.Fatalf("%d synthetic jobs asked about, want %d", len(calls), ghosts)
		}
		for id, calls := range calls {
			if len(calls) != 1 || calls[0] != "POST release" {
				t.Fatalf("synthetic job %s: calls %q, want one release", id, calls)
			}
		}
		// The first two (oldest) ran at once; the other two were handed
		// back, claimed again and run.
		for i, want := range []int{0, 0, 1, 1} {
			e.assertEvents(t, ids[i], embedded.EventReleased, want)
		}
		if f.MaxActive() > 2 || f.Starts() != real {
			t.Fatalf("%d jobs ran at once (capacity 2), %d started (want %d)", f.MaxActive(), f.Starts(), real)
		}
		e.waitLogged(t, slog.LevelWarn, "releasing the excess")
		e.alive(t, "a giant answer", false)
	}
}
