package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
)

// failsUntil is an executor whose job fails until its nth run, printing
// which run it is; FAKE-free so that every run is a fresh execution.
type failsUntil struct {
	n    int
	mu   sync.Mutex
	runs map[string][]string // job id → execution ids run
}

func (f *failsUntil) Run(_ context.Context, spec executors.Spec, out executors.Output) (executors.Result, error) {
	f.mu.Lock()
	f.runs[spec.JobID] = append(f.runs[spec.JobID], spec.ExecutionID)
	n := len(f.runs[spec.JobID])
	f.mu.Unlock()
	fmt.Fprintf(out.Stdout, "attempt %d\n", n)
	if spec.Resume.Resuming {
		return executors.Result{}, fmt.Errorf("attempt %d resumed: a retry must start afresh", n)
	}
	if n < f.n {
		return executors.Result{Exited: true, ExitCode: 1}, nil
	}
	return executors.Result{Exited: true}, nil
}

func (f *failsUntil) Abandon(context.Context, executors.Spec) error { return nil }

func (f *failsUntil) ran(jobID string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.runs[jobID]...)
}

func retryJob(max int) embedded.SubmitRequest {
	req := bashJob("x", nil)
	req.RetryPolicy = &backend.RetryPolicy{MaxAttempts: max, BackoffType: "exponential", BackoffDelay: 0.01}
	return req
}

// A script that fails twice and then succeeds, under a policy of three
// attempts: completed, three execution records (each with its own output
// and exit code), one terminal update.
func TestRetryUntilSuccess(t *testing.T) {
	f := &failsUntil{n: 3, runs: map[string][]string{}}
	s := startStack(t, map[jobspec.Kind]executors.Executor{jobspec.KindContainer: f})
	id := s.submit(retryJob(3))
	v := s.wait(id, testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "completed" || v.Output.Stdout != "attempt 3\n" {
		t.Fatalf("status %s stdout %q stderr %q", v.Status, v.Output.Stdout, v.Output.Stderr)
	}
	if ran := f.ran(id); len(ran) != 3 || ran[0] == ran[1] || ran[1] == ran[2] {
		t.Fatalf("executions run %v, want three distinct", ran)
	}
	if len(v.Executions) != 3 {
		t.Fatalf("%d execution records, want 3: %+v", len(v.Executions), v.Executions)
	}
	byID := map[string]embedded.ExecutionView{}
	for _, e := range v.Executions {
		byID[e.ID] = e
	}
	for i, execID := range f.ran(id) {
		e, want := byID[execID], 0
		if i < 2 {
			want = 1
		}
		if e.ExitCode == nil || *e.ExitCode != want || e.Output != fmt.Sprintf("attempt %d\n", i+1) {
			t.Errorf("execution %d: exit %v output %q", i+1, e.ExitCode, e.Output)
		}
	}
	var m struct{ Attempts int }
	if err := json.Unmarshal(v.Result.Metrics, &m); err != nil || m.Attempts != 3 {
		t.Errorf("metrics %s: attempts %d, want 3", v.Result.Metrics, m.Attempts)
	}
}

// A script that always fails runs maxAttempts times and fails once.
func TestRetryGivesUpAfterMaxAttempts(t *testing.T) {
	f := &failsUntil{n: 100, runs: map[string][]string{}}
	s := startStack(t, map[jobspec.Kind]executors.Executor{jobspec.KindContainer: f})
	id := s.submit(retryJob(2))
	v := s.wait(id, testenv.Patience)
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "failed" || v.Output.Stdout != "attempt 2\n" || len(f.ran(id)) != 2 || len(v.Executions) != 2 {
		t.Fatalf("status %s stdout %q, %d runs, %d records", v.Status, v.Output.Stdout, len(f.ran(id)), len(v.Executions))
	}
}

// A cancelled job is not retried, whatever its policy.
func TestCancelledJobIsNotRetried(t *testing.T) {
	s, f := fakeStack(t)
	req := bashJob("x", map[string]string{"FAKE_LINES": "1", "FAKE_SLEEP": "1h"})
	req.RetryPolicy = &backend.RetryPolicy{MaxAttempts: 3, BackoffDelay: 0.01}
	id := s.submit(req)
	testenv.Eventually(t, testenv.Patience, "job running", func() bool {
		v, _ := s.store.Job(t.Context(), id)
		return v.Status == "running" && f.Starts() == 1
	})
	if err := s.store.Cancel(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	v := s.wait(id, testenv.Patience)
	s.stop()
	s.assertOneTerminalUpdate(t, v)
	if v.Status != "cancelled" || f.Starts() != 1 || len(v.Executions) != 1 {
		t.Fatalf("status %s, %d starts, %d records", v.Status, f.Starts(), len(v.Executions))
	}
}
