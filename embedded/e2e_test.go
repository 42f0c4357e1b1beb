package embedded

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/secret"
)

// lossyProxy forwards to the embedded server, but the first /complete
// response is lost: the backend records the completion and the client
// sees its connection reset.
func lossyProxy(t *testing.T, target string) *httptest.Server {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	var dropped atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/complete") || dropped.Swap(true) {
			rp.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequest(r.Method, target+r.URL.Path, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("forward: %v", err)
			return
		}
		resp.Body.Close()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		conn.Close()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The page's recommended sequence, end to end, with the completion's
// response lost: the job still gets exactly one terminal update.
func TestRecommendedSequenceExactlyOnceDespiteLostResponse(t *testing.T) {
	e := newEnv(t)
	id := e.submit(bashJob("echo hi"))
	proxy := lossyProxy(t, e.srv.URL)
	c, err := backend.New(backend.Options{BaseURL: proxy.URL, Token: secret.Value(testToken), OrchestratorID: "o1",
		RequestTimeout: time.Minute, RetryMaxElapsed: testenv.Patience})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	jobs, err := c.PollJobs(ctx, 4)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("poll: %d, %v", len(jobs), err)
	}
	execID := "exec_" + id + "_1"
	mustDo(t, c.CreateExecution(ctx, execID, backend.ExecutionCreate{JobID: id}))
	mustDo(t, c.UpdateJobStatus(ctx, id, backend.StatusRunning, backend.StatusDetails{}))
	out, ms, code := "hi\n", int64(12), 0
	mustDo(t, c.UpdateExecution(ctx, execID, backend.ExecutionUpdate{Output: &out, ExitCode: &code, TotalDuration: &ms}))
	mustDo(t, c.CompleteJob(ctx, id, backend.Completion{Status: backend.StatusCompleted,
		Output: backend.CompletionOutput{Stdout: out}}))

	v := e.job(id)
	if v.TerminalUpdates != 1 || v.Result.Status != StatusSuccess || v.Output.Stdout != "hi\n" || ExitCodeFor(v) != 0 {
		t.Fatalf("job: %d terminal updates, %s, stdout %q", v.TerminalUpdates, v.Result.Status, v.Output.Stdout)
	}
	if len(v.Executions) != 1 || v.Executions[0].Output != "hi\n" || !strings.Contains(string(v.Executions[0].Timings), `"totalDuration":12`) {
		t.Fatalf("executions: %+v", v.Executions)
	}
	events, err := e.public.Events(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range events {
		kinds = append(kinds, ev.Kind)
	}
	// The acknowledge is the client checking whether the lost /complete landed.
	want := "submitted,claimed,execution created,status,execution updated,completed,acknowledged"
	if strings.Join(kinds, ",") != want {
		t.Fatalf("events %v\nwant %s", kinds, want)
	}
}

// The embedded backend refuses NUL like PostgreSQL; the client's
// sanitising gets the same output through.
func TestClientSanitisesWhatTheBackendWouldRefuse(t *testing.T) {
	e := newEnv(t)
	id := e.submit(bashJob("printf 'a\\0b'"))
	e.claim("o1", 1)
	c := e.client("o1")
	ctx := t.Context()
	mustDo(t, c.CreateExecution(ctx, "exec_1", backend.ExecutionCreate{JobID: id}))
	snap := "x\x00y\xff"
	mustDo(t, c.UpdateExecution(ctx, "exec_1", backend.ExecutionUpdate{Output: &snap}))
	mustDo(t, c.CompleteJob(ctx, id, backend.Completion{Status: backend.StatusFailed, ExitCode: 1,
		Output: backend.CompletionOutput{Stdout: "a\x00b", Stderr: "bad \xc3"}}))
	v := e.job(id)
	if v.Output.Stdout != "a\uFFFDb" || v.Result.Error != "bad \uFFFD" || v.Executions[0].Output != "x\uFFFDy\uFFFD" {
		t.Fatalf("stored %q, error %q, snapshot %q", v.Output.Stdout, v.Result.Error, v.Executions[0].Output)
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
