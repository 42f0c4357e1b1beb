package embedded

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/internal/testenv"
)

func TestResync(t *testing.T) {
	var b strings.Builder
	for i := range 60 {
		fmt.Fprintf(&b, "output line %03d\n", i) // 16 bytes each, 960 in all
	}
	long := b.String()
	head, tail := long[:96], long[len(long)-300:] // head: 6 whole lines
	marker := "\n...[truncated 280 bytes]...\n"
	tests := []struct {
		name, prev, cur, want string
	}{
		{"first", "", "hello\n", "hello\n"},
		{"grows", "hello\n", "hello\nworld\n", "world\n"},
		{"unchanged", "a", "a", ""},
		{"marker appears, tail overlaps what was shown",
			long[:800], head + marker + tail, long[800:]},
		{"marker appears, tail after what was shown",
			long[:500], head + marker + tail, marker + tail},
		{"marker count changes as the tail moves",
			head + "\n...[truncated 280 bytes]...\n" + tail,
			head + "\n...[truncated 297 bytes]...\n" + tail[16:] + "more output line!\n",
			"more output line!\n"},
		{"tail moved past everything shown: marker line and tail",
			"line one\nline two\n", "line one\n...[truncated 9000 bytes]...\nlast line\n",
			"...[truncated 9000 bytes]...\nlast line\n"},
		{"final differs mid-line: new line, then the line again",
			"progress 10%", "progress 100%\ndone\n", "\nprogress 100%\ndone\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resync(tt.prev, tt.cur); got != tt.want {
				t.Fatalf("resync =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// Follow against scripted snapshots: each /output call serves the next.
func TestFollowPrintsEachPartOnce(t *testing.T) {
	snaps := []OutputView{
		{Stdout: "", Status: "queued"},
		{Stdout: "a\n", Status: "running"},
		{Stdout: "a\n", Stderr: "warn\n", Status: "running"},
		{Stdout: "a\nb\n", Stderr: "warn\n", Status: "running"},
		{Stdout: "a\nb\nc\n", Stderr: "warn\n", Final: true, Status: "completed"},
	}
	var mu sync.Mutex
	i := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/output") {
			writeJSON(w, 200, snaps[min(i, len(snaps)-1)])
			i++
			return
		}
		code := 0
		writeJSON(w, 200, JobView{ID: "job_x", Status: "completed", Result: ResultView{Status: StatusSuccess, ExitCode: &code}})
	}))
	defer srv.Close()
	var stdout, stderr strings.Builder
	v, err := NewPublicClient(srv.URL, "").Follow(t.Context(), "job_x", time.Millisecond, &stdout, &stderr)
	if err != nil || ExitCodeFor(v) != 0 {
		t.Fatalf("follow: %+v, %v", v, err)
	}
	if stdout.String() != "a\nb\nc\n" || stderr.String() != "warn\n" {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
}

// A real run: the orchestrator's client sends growing snapshots and one
// /complete; Follow prints every line exactly once and returns the result.
func TestFollowEmbeddedRun(t *testing.T) {
	e := newEnv(t)
	id := e.submit(bashJob("for i in $(seq 50); do echo line $i; done"))
	j := e.claim("o1", 1)[0]
	c := e.client("o1")
	ctx := t.Context()

	followed, returned := make(chan error, 1), make(chan struct{})
	var stdout, stderr strings.Builder
	var view JobView
	go func() {
		defer close(returned)
		var err error
		view, err = e.public.Follow(ctx, id, time.Millisecond, &stdout, &stderr)
		followed <- err
	}()
	// If the test ends early, Follow ends with t.Context: wait for it.
	t.Cleanup(func() { <-returned })

	if err := c.CreateExecution(ctx, "exec_"+j.ID, backend.ExecutionCreate{JobID: j.ID}); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateJobStatus(ctx, j.ID, backend.StatusRunning, backend.StatusDetails{}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for i := 1; i <= 50; i++ {
		fmt.Fprintf(&out, "line %d\n", i)
		snap := out.String()
		if err := c.UpdateExecution(ctx, "exec_"+j.ID, backend.ExecutionUpdate{Output: &snap}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if err := c.CompleteJob(ctx, j.ID, backend.Completion{Status: backend.StatusFailed, ExitCode: 3,
		Output: backend.CompletionOutput{Stdout: out.String(), Stderr: "oops\n"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-followed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testenv.Patience):
		t.Fatal("Follow did not return")
	}
	if stdout.String() != out.String() || stderr.String() != "oops\n" {
		t.Fatalf("printed stdout %q\nstderr %q", stdout.String(), stderr.String())
	}
	if ExitCodeFor(view) != 3 || view.TerminalUpdates != 1 || view.Result.Status != StatusFailure {
		t.Fatalf("view: exit %d, %d terminal updates, %s", ExitCodeFor(view), view.TerminalUpdates, view.Result.Status)
	}
}

func TestFollowUnknownJob(t *testing.T) {
	e := newEnv(t)
	_, err := e.public.Follow(t.Context(), "job_nope", time.Millisecond, &strings.Builder{}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("err = %v", err)
	}
}

func TestExitCodeFor(t *testing.T) {
	code := func(n int) *int { return &n }
	tests := []struct {
		name string
		r    ResultView
		want int
	}{
		{"success", ResultView{Status: StatusSuccess, ExitCode: code(0)}, 0},
		{"success without code", ResultView{Status: StatusSuccess}, 0},
		{"partial", ResultView{Status: StatusPartial, ExitCode: code(102)}, 102},
		{"failure", ResultView{Status: StatusFailure, ExitCode: code(3)}, 3},
		{"failure reported as 0", ResultView{Status: StatusFailure, ExitCode: code(0)}, 1},
		{"failure without code: could not run", ResultView{Status: StatusFailure}, 125},
		{"orchestrator reported 125", ResultView{Status: StatusFailure, ExitCode: code(125)}, 125},
		{"huge code", ResultView{Status: StatusFailure, ExitCode: code(1000)}, 255},
		{"timeout", ResultView{Status: StatusTimeout, ExitCode: code(-1)}, 124},
		{"cancelled", ResultView{Status: StatusCancelled}, 130},
		{"not finished", ResultView{Status: StatusRunning}, 125},
	}
	for _, tt := range tests {
		if got := ExitCodeFor(JobView{Result: tt.r}); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
}

// Output serves the newest execution's snapshot (by creation time, then
// insertion order) until the final output is stored, then that; Job's
// output agrees.
func TestOutputIsTheLatestSnapshotThenTheFinal(t *testing.T) {
	e := newEnv(t)
	id := e.submit(bashJob("true"))
	e.claim("o1", 1)
	c := e.client("o1")
	ctx := t.Context()
	check := func(stdout string, final bool) {
		t.Helper()
		o, err := e.public.Output(ctx, id)
		if err != nil || o.Stdout != stdout || o.Final != final || e.job(id).Output != o {
			t.Fatalf("output = %+v, %v; job's %+v; want stdout %q, final %v", o, err, e.job(id).Output, stdout, final)
		}
	}
	check("", false)
	at := e.clock.Now()
	for _, ex := range []string{"exec_b", "exec_a"} { // one creation time: insertion order decides
		mustDo(t, e.store.createExecution(ctx, ex, id, "", "", "o1", at))
		snap := "from " + ex
		mustDo(t, c.UpdateExecution(ctx, ex, backend.ExecutionUpdate{Output: &snap}))
	}
	check("from exec_a", false)
	mustDo(t, e.store.createExecution(ctx, "exec_0", id, "", "", "o1", e.clock.Now()))
	check("", false) // the newest has no output yet
	mustDo(t, c.CompleteJob(ctx, id, backend.Completion{Status: backend.StatusCompleted,
		Output: backend.CompletionOutput{Stdout: "final"}}))
	check("final", true)
}
