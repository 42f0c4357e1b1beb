package embedded

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
)

func TestCompleteMapsStatusAndReplacesResult(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		status     string // stored
		ui         string
		exitCode   int
		lastError  string
		stdout     string
		resultKeys string // the result's keys, sorted
	}{
		{"completed", `{"status":"completed","exitCode":0,"output":{"stdout":"hi","stderr":"warn"},"metrics":{"cpu":1},"scriptOutput":{"a":1},"condition":true}`,
			"completed", StatusSuccess, 0, "", "hi", "[condition exitCode metrics scriptOutput]"},
		{"failed: stderr becomes the error", `{"status":"failed","exitCode":2,"output":{"stdout":"","stderr":"boom"}}`,
			"failed", StatusFailure, 2, "boom", "", "[exitCode]"},
		{"timeout: failed with -1", `{"status":"timeout","exitCode":137,"output":{"stdout":"x","stderr":"slow"}}`,
			"failed", StatusTimeout, -1, "Job execution timed out\nslow", "x", "[exitCode]"},
		{"cancelled", `{"status":"cancelled","exitCode":130}`, "cancelled", StatusCancelled, 130, "", "", "[exitCode]"},
		{"no status, exit 0", `{"exitCode":0}`, "completed", StatusSuccess, 0, "", "", "[exitCode]"},
		{"no status, exit 3", `{"exitCode":3}`, "failed", StatusFailure, 3, "", "", "[exitCode]"},
		{"unknown status goes by exit code", `{"status":"weird","exitCode":0}`, "completed", StatusSuccess, 0, "", "", "[exitCode]"},
		{"partial", `{"status":"completed","exitCode":102}`, "completed", StatusPartial, 102, "", "", "[exitCode]"},
		{"output as a string", `{"status":"completed","output":"plain"}`, "completed", StatusSuccess, 0, "", "plain", "[exitCode]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.submit(bashJob("true"))
			e.claim("o1", 1)
			// A result from before must be replaced, not merged.
			e.raw("PUT", "/api/internal/jobs/"+id+"/status", `{"status":"completed","details":{"exitCode":9}}`, nil)
			if st, resp := e.raw("POST", "/api/internal/jobs/"+id+"/complete", tt.body, nil); st != 200 {
				t.Fatalf("complete: %d %v", st, resp)
			}
			v := e.job(id)
			if v.Status != tt.status || v.Result.Status != tt.ui || v.Result.ExitCode == nil ||
				*v.Result.ExitCode != tt.exitCode || v.Result.Error != tt.lastError || v.Output.Stdout != tt.stdout {
				t.Fatalf("view = %s %s exit %v error %q stdout %q", v.Status, v.Result.Status, deref(v.Result.ExitCode, -99),
					v.Result.Error, v.Output.Stdout)
			}
			_, resp := e.raw("POST", "/api/internal/jobs/"+id+"/acknowledge", `{"orchestratorId":"o1"}`, nil)
			result, _ := resp["job"].(map[string]any)["result"].(map[string]any)
			if keys := sortedKeys(result); keys != tt.resultKeys {
				t.Fatalf("result keys %s, want %s", keys, tt.resultKeys)
			}
		})
	}
}

func sortedKeys(m map[string]any) string {
	return fmt.Sprint(slices.Sorted(maps.Keys(m)))
}

// Every terminal update counts and is logged; there is no state machine,
// so a second /complete lands too. That is what lets tests prove an
// orchestrator sends exactly one.
func TestTerminalUpdatesAreCounted(t *testing.T) {
	e := newEnv(t)
	id := e.submit(bashJob("true"))
	e.claim("o1", 1)
	c := e.client("o1")
	ctx := t.Context()
	out := "partial"
	steps := []struct {
		name     string
		do       func() error
		terminal int
		status   string
	}{
		{"execution create", func() error { return c.CreateExecution(ctx, "exec_1", backend.ExecutionCreate{JobID: id}) }, 0, "claimed"},
		{"running", func() error { return c.UpdateJobStatus(ctx, id, backend.StatusRunning, backend.StatusDetails{}) }, 0, "running"},
		{"snapshot", func() error { return c.UpdateExecution(ctx, "exec_1", backend.ExecutionUpdate{Output: &out}) }, 0, "running"},
		{"complete", func() error {
			return c.CompleteJob(ctx, id, backend.Completion{Status: backend.StatusCompleted, Output: backend.CompletionOutput{Stdout: "done"}})
		}, 1, "completed"},
		{"fail", func() error { return c.FailJob(ctx, id, "late", 1) }, 2, "failed"},
		{"status completed", func() error {
			return c.UpdateJobStatus(ctx, id, backend.StatusCompleted, backend.StatusDetails{})
		}, 3, "completed"},
		{"terminal execution update (raw)", func() error {
			st, resp := e.raw("PUT", "/api/internal/executions/exec_1/update", `{"status":"failed","exitCode":4,"completedAt":"2025-10-22T15:00:00Z"}`, nil)
			if st != 200 {
				return fmt.Errorf("%d %v", st, resp)
			}
			return nil
		}, 4, "failed"},
		{"running again: no state machine", func() error {
			return c.UpdateJobStatus(ctx, id, backend.StatusRunning, backend.StatusDetails{})
		}, 4, "running"},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if v := e.job(id); v.TerminalUpdates != s.terminal || v.Status != s.status {
			t.Fatalf("after %s: %d terminal updates, status %s; want %d, %s", s.name, v.TerminalUpdates, v.Status, s.terminal, s.status)
		}
	}
	events, err := e.public.Events(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	terminals := 0
	for _, ev := range events {
		kinds = append(kinds, ev.Kind)
		if ev.Terminal {
			terminals++
		}
	}
	want := "submitted,claimed,execution created,status,execution updated,completed,failed,status,execution updated,status"
	if strings.Join(kinds, ",") != want || terminals != 4 {
		t.Fatalf("events %v (%d terminal), want %s (4 terminal)", kinds, terminals, want)
	}
	if events[4].Detail != "output 7 bytes" {
		t.Fatalf("snapshot event detail %q", events[4].Detail)
	}
}

func TestRunningResetsStartedAtAndReleaseClears(t *testing.T) {
	e := newEnv(t)
	id := e.submit(bashJob("true"))
	e.claim("o1", 1)
	c := e.client("o1")
	ctx := t.Context()
	if err := c.UpdateJobStatus(ctx, id, backend.StatusRunning, backend.StatusDetails{}); err != nil {
		t.Fatal(err)
	}
	first := *e.job(id).StartedAt
	e.clock.Advance(time.Minute)
	if err := c.UpdateJobStatus(ctx, id, backend.StatusRunning, backend.StatusDetails{}); err != nil {
		t.Fatal(err)
	}
	if second := *e.job(id).StartedAt; !second.After(first.Add(59 * time.Second)) {
		t.Fatalf("startedAt %v then %v: want it reset", first, second)
	}
	if err := c.ReleaseJob(ctx, id, "draining"); err != nil {
		t.Fatal(err)
	}
	v := e.job(id)
	if v.Status != "queued" || v.OrchestratorID != "" || v.StartedAt != nil || v.Result.Error != "draining" {
		t.Fatalf("after release: %+v", v)
	}
	if jobs := e.claim("o2", 1); jobs[0].ID != id {
		t.Fatal("released job not claimable")
	}
}

func TestOrphanedReturnsRawRowsOfOwnedOpenJobs(t *testing.T) {
	e := newEnv(t)
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, e.submit(bashJob("true")))
	}
	e.claim("o1", 4)
	e.submit(bashJob("someone else's"))
	e.claim("o2", 1)
	c := e.client("o1")
	ctx := t.Context()
	_ = c.UpdateJobStatus(ctx, ids[1], backend.StatusRunning, backend.StatusDetails{})
	_ = c.CompleteJob(ctx, ids[2], backend.Completion{Status: backend.StatusCompleted})
	_ = c.FailJob(ctx, ids[3], "x", 1)

	st, resp := e.raw("GET", "/api/internal/jobs/orphaned?orchestratorId=o1", "", nil)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(resp["_raw"].(string)), &rows); st != 200 || err != nil {
		t.Fatalf("orphaned = %d %v: not a bare array: %v", st, resp, err)
	}
	if len(rows) != 2 || rows[0]["id"] != ids[0] || rows[0]["status"] != "claimed" ||
		rows[1]["id"] != ids[1] || rows[1]["status"] != "running" {
		t.Fatalf("rows = %v", rows)
	}
	wantKeys := "[attempts completedAt createdAt id lastError metadata orchestratorId payload priority result scheduledFor startedAt status type updatedAt]"
	if keys := sortedKeys(rows[0]); keys != wantKeys {
		t.Fatalf("row keys %s\nwant      %s", keys, wantKeys)
	}
	if rows[1]["startedAt"] == nil || rows[0]["orchestratorId"] != "o1" {
		t.Fatalf("row fields: %v", rows)
	}
}

func TestCancelIsRevealedByAcknowledgeAndOverwrittenByComplete(t *testing.T) {
	e := newEnv(t)
	id := e.submit(bashJob("sleep 100"))
	e.claim("o1", 1)
	ctx := t.Context()
	if err := e.public.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	c := e.client("o1")
	row, err := c.Acknowledge(ctx, id)
	if err != nil || row.Status != backend.StatusCancelled {
		t.Fatalf("ack = %+v, %v; want cancelled", row, err)
	}
	if v := e.job(id); ExitCodeFor(v) != 130 || v.TerminalUpdates != 0 {
		t.Fatalf("cancelled view: exit %d, %d terminal updates", ExitCodeFor(v), v.TerminalUpdates)
	}
	// The page: a later /complete silently overwrites cancelled.
	if err := c.CompleteJob(ctx, id, backend.Completion{Status: backend.StatusFailed, ExitCode: 1}); err != nil {
		t.Fatal(err)
	}
	if v := e.job(id); v.Status != "failed" {
		t.Fatalf("status %s, want failed", v.Status)
	}
	if err := e.public.Cancel(ctx, id); err == nil {
		t.Fatal("cancelling a finished job succeeded")
	}
}
