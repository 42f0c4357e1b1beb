package embedded

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
)

// Two orchestrators with different ids hammer the queue over HTTP: every
// job is claimed exactly once, by the one the store records, none lost.
func TestClaimIsExclusiveUnderConcurrentPollers(t *testing.T) {
	e := newEnv(t)
	const n = 300
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		id, err := e.store.submit(t.Context(), bashJob(fmt.Sprintf("echo %d", i)), e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		want[id] = true
	}

	var mu sync.Mutex
	claimedBy := map[string]string{}
	dups := 0
	var wg sync.WaitGroup
	for _, orch := range []string{"orch-a", "orch-b"} {
		c := e.client(orch)
		wg.Go(func() {
			for empty := 0; empty < 3; {
				jobs, err := c.PollJobs(t.Context(), 1+rand.IntN(7))
				if err != nil {
					t.Error(err)
					return
				}
				if len(jobs) == 0 {
					empty++
					continue
				}
				mu.Lock()
				for _, j := range jobs {
					if _, seen := claimedBy[j.ID]; seen {
						dups++
					}
					claimedBy[j.ID] = orch
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	if dups != 0 {
		t.Fatalf("%d jobs claimed twice", dups)
	}
	if len(claimedBy) != n {
		t.Fatalf("%d jobs claimed, want %d", len(claimedBy), n)
	}
	stored, err := e.public.List(t.Context(), "claimed", n+1)
	if err != nil || len(stored) != n {
		t.Fatalf("%d jobs stored as claimed, %v; want %d", len(stored), err, n)
	}
	per := map[string]int{}
	for _, v := range stored {
		if !want[v.ID] || claimedBy[v.ID] != v.OrchestratorID {
			t.Fatalf("job %s stored as claimed by %q, answered to %q", v.ID, v.OrchestratorID, claimedBy[v.ID])
		}
		per[v.OrchestratorID]++
	}
	t.Logf("claims per orchestrator: %v", per)
}

// Two Stores on one file stand for two processes: their single
// connections serialise nothing between them. What keeps the claim
// exclusive is SQLite's one write lock, which a claim's transaction holds
// from BEGIN (Open sets _txlock=immediate) to COMMIT: one claim, from its
// read of the queue to its commit, runs wholly before or after the other.
// The UPDATE's re-check of status and owner adds nothing here (its
// subquery and the update read one snapshot); it mirrors the real
// backend's conditional update on a database with row locks. The test
// fails if the queue is read outside the locked transaction and the
// UPDATE does not re-check (jobs claimed twice), or if a read and an
// unconditional UPDATE run as separate statements in a deferred
// transaction (SQLITE_BUSY_SNAPSHOT).
func TestClaimIsExclusiveAcrossStoresOnOneFile(t *testing.T) {
	e := newEnv(t)
	const n = 200
	for i := 0; i < n; i++ {
		if _, err := e.store.submit(t.Context(), bashJob("true"), e.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	second, err := Open(e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()

	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i, st := range []*Store{e.store, second} {
		orch := fmt.Sprintf("proc-%d", i)
		wg.Go(func() {
			for {
				jobs, err := st.claim(t.Context(), orch, 3, time.Now().Add(time.Hour))
				if err != nil {
					t.Error(err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					seen[j.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d distinct jobs claimed, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("job %s claimed %d times", id, k)
		}
	}
}

func TestClaimOrderAndSchedule(t *testing.T) {
	e := newEnv(t)
	later := e.clock.Now().Add(time.Hour)
	low := e.submit(SubmitRequest{Script: bashJob("a").Script, Priority: 1})
	high := e.submit(SubmitRequest{Script: bashJob("b").Script, Priority: 5})
	low2 := e.submit(SubmitRequest{Script: bashJob("c").Script, Priority: 1})
	future := e.submit(SubmitRequest{Script: bashJob("d").Script, Priority: 9, ScheduledFor: &later})

	jobs := e.claim("o1", 3)
	got := []string{jobs[0].ID, jobs[1].ID, jobs[2].ID}
	want := []string{high, low, low2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("claim order %v, want %v (priority desc, then oldest)", got, want)
	}
	e.claim("o1", 0) // the future job is not due
	e.clock.Advance(2 * time.Hour)
	if jobs := e.claim("o2", 1); jobs[0].ID != future {
		t.Fatalf("claimed %s, want the now-due %s", jobs[0].ID, future)
	}
}

func TestBatchSizeLimitsTheClaim(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 5; i++ {
		e.submit(bashJob("true"))
	}
	jobs, err := e.client("o1").PollJobs(t.Context(), 2)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("poll(2) = %d jobs, %v", len(jobs), err)
	}
	e.claim("o1", 3)
}

func TestJobsSurviveReopen(t *testing.T) {
	e := newEnv(t)
	claimed := e.submit(bashJob("echo claimed"))
	e.claim("o1", 1)
	queued := e.submit(bashJob("echo queued"))

	e.close()
	e.open()

	ctx := t.Context()
	rows, err := e.client("o1").OrphanedJobs(ctx)
	if err != nil || len(rows) != 1 || rows[0].ID != claimed || rows[0].Status != backend.StatusClaimed {
		t.Fatalf("orphaned after reopen = %+v, %v; want %s claimed", rows, err, claimed)
	}
	jobs := e.claim("o2", 1)
	if jobs[0].ID != queued || jobs[0].Execution.Script.Content != "echo queued" {
		t.Fatalf("claimed %+v, want %s", jobs[0], queued)
	}
	events, err := e.public.Events(ctx, claimed)
	if err != nil || len(events) != 2 || events[1].Kind != EventClaimed {
		t.Fatalf("events after reopen = %+v, %v", events, err)
	}
}
