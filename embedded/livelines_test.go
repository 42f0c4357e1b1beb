package embedded

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/internal/testenv"
)

func TestOverlay(t *testing.T) {
	tests := []struct{ name, snapshot, live, want string }{
		{"no live lines", "a\nb\n", "", "a\nb\n"},
		{"live lines ahead", "a\n", "a\nb\n", "a\nb\n"},
		{"live lines ahead of a partial line", "a\nb-part", "a\nb-partial\n", "a\nb-partial\n"},
		{"partial line beyond the live lines", "a\nb-part", "a\n", "a\nb-part"},
		{"snapshot ahead", "a\nb\nc\n", "a\nb\n", "a\nb\nc\n"},
		{"a line dropped on the way", "a\nb\n", "a\nc\nd\n", "a\nb\n"},
		{"capped snapshot", "a\n[cronium: 9 bytes of output omitted here]\nz\n", "a\nb\nc\nd\n",
			"a\n[cronium: 9 bytes of output omitted here]\nz\n"},
	}
	for _, tt := range tests {
		if got := overlay(tt.snapshot, tt.live); got != tt.want {
			t.Errorf("%s: overlay(%q, %q) = %q, want %q", tt.name, tt.snapshot, tt.live, got, tt.want)
		}
	}
}

// postLine sends one live line as the orchestrator does (no token).
func postLine(t *testing.T, url string, logID any, stream, line string) int {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"logId": logID, "line": line, "stream": stream})
	resp, err := http.Post(url+"/broadcast/log-line", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A follower sees each live line as it comes, between snapshots, and
// each line once: the snapshots that catch up, and the final output,
// print nothing again.
func TestFollowShowsLiveLines(t *testing.T) {
	e := newHoldEnv(t)
	ctx := t.Context()
	id := e.submit(bashJob("true"))
	c := e.client("o1")
	jobs, err := c.PollJobs(ctx, 1)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v, %v", jobs, err)
	}
	logID := jobs[0].Metadata.LogID.String()
	mustDo(t, c.CreateExecution(ctx, "exec_1", backend.ExecutionCreate{JobID: id}))
	mustDo(t, c.UpdateJobStatus(ctx, id, backend.StatusRunning, backend.StatusDetails{}))

	var stdout, stderr syncBuilder
	followed := make(chan error, 1)
	go func() {
		_, err := e.public.Follow(ctx, id, time.Hour, &stdout, &stderr) // only held requests move it on
		followed <- err
	}()
	e.held(1)
	var out strings.Builder
	for i := 1; i <= 6; i++ {
		line := fmt.Sprintf("line %d", i)
		fmt.Fprintln(&out, line)
		if code := postLine(t, e.url, json.Number(logID), "stdout", line); code != http.StatusOK {
			t.Fatalf("live line: %d", code)
		}
		testenv.Eventually(t, testenv.Patience, line+" shown", func() bool { return stdout.String() == out.String() })
		if i%2 == 0 { // a snapshot catches up now and then
			snap := out.String()
			mustDo(t, c.UpdateExecution(ctx, "exec_1", backend.ExecutionUpdate{Output: &snap}))
		}
	}
	if code := postLine(t, e.url, logID, "stderr", "warning"); code != http.StatusOK { // logId as a string
		t.Fatalf("live line: %d", code)
	}
	testenv.Eventually(t, testenv.Patience, "the stderr line", func() bool { return stderr.String() == "warning\n" })
	out.WriteString("last, without newline")
	mustDo(t, c.CompleteJob(ctx, id, backend.Completion{Status: backend.StatusCompleted,
		Output: backend.CompletionOutput{Stdout: out.String(), Stderr: "warning\n"}}))
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	if stdout.String() != out.String() || stderr.String() != "warning\n" {
		t.Fatalf("printed %q / %q", stdout.String(), stderr.String())
	}
	// The job ended: its lines are the final output's now, and no
	// longer taken.
	if code := postLine(t, e.url, json.Number(logID), "stdout", "late"); code != http.StatusOK {
		t.Fatalf("late line: %d", code)
	}
	if o, err := e.public.Output(ctx, id); err != nil || o.Stdout != out.String() {
		t.Fatalf("output after the end: %q, %v", o.Stdout, err)
	}
}

func TestLiveLineRefusals(t *testing.T) {
	e := newHoldEnv(t)
	e.submit(bashJob("true"))
	for _, tt := range []struct {
		logID        any
		stream, line string
		want         int
	}{
		{1, "stdout", "ok", http.StatusOK},
		{99, "stdout", "no such job", http.StatusNotFound},
		{"x", "stdout", "not a number", http.StatusNotFound},
		{1, "stdin", "bad stream", http.StatusBadRequest},
	} {
		if got := postLine(t, e.url, tt.logID, tt.stream, tt.line); got != tt.want {
			t.Errorf("%v %s %q: %d, want %d", tt.logID, tt.stream, tt.line, got, tt.want)
		}
	}
	resp, err := http.Post(e.url+"/broadcast/log-line", "application/json", strings.NewReader(`{"logId":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("no line: %s", resp.Status)
	}
}
