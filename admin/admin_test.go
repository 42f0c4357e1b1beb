package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/messages"
	"github.com/cronium/orchestrator/secret"
)

// fakeSupervisor answers the admin's requests like the real one: the
// victim is listed while it lives, with its restarts.
type fakeSupervisor struct {
	tree messages.ActorTree
	jobs messages.JobList
	fx   *fixture
}

func (f *fakeSupervisor) Receive(c *actor.Context) {
	switch m := kit.Message(c).(type) {
	case messages.ListActors:
		t := f.tree
		t.Actors = nil
		for _, a := range f.tree.Actors {
			if a.PID == f.fx.victim.ID {
				if f.fx.engine.Registry.GetPID("victim", "v1") == nil {
					continue
				}
				a.Restarts = int(f.fx.starts.Load()) - 1
			}
			t.Actors = append(t.Actors, a)
		}
		c.Respond(t)
	case messages.ListJobs:
		c.Respond(f.jobs)
	case messages.CancelJob:
		c.Respond(m.JobID == "job_1")
	}
}

// victim counts its starts: a crash restarts it in place.
type victim struct{ starts *atomic.Int32 }

func (v victim) Receive(c *actor.Context) {
	if _, ok := kit.Message(c).(actor.Started); ok {
		v.starts.Add(1)
	}
}

type fixture struct {
	engine *actor.Engine
	victim *actor.PID
	starts *atomic.Int32
	now    time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{engine: e, starts: &atomic.Int32{}, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f.victim = e.Spawn(func() actor.Receiver { return victim{starts: f.starts} }, "victim",
		kit.SpawnOpts("job", "v1", nil)...)
	t.Cleanup(func() { <-e.Poison(f.victim).Done() })
	return f
}

func (f *fixture) server(t *testing.T, listen string, token secret.Value) *Server {
	t.Helper()
	sup := &fakeSupervisor{
		tree: messages.ActorTree{
			Actors: []messages.ActorInfo{
				{PID: f.victim.ID, Kind: "job", JobID: "job_1", State: "running", StartedAt: f.now.Add(-time.Minute)},
				{PID: "supervisor/root", Kind: "supervisor", State: "running", StartedAt: f.now.Add(-time.Hour)},
				{PID: "supervisor/root/poller/main", Kind: "poller", State: "running", StartedAt: f.now.Add(-time.Hour)},
			},
			Restarts: []messages.RestartEvent{
				{At: f.now.Add(-2 * time.Second), PID: f.victim.ID, Kind: "job", JobID: "job_1", Reason: "first"},
				{At: f.now.Add(-time.Second), PID: f.victim.ID, Kind: "job", JobID: "job_1", Reason: "second"},
			},
		},
		jobs: messages.JobList{Jobs: []messages.JobInfo{{JobStatus: messages.JobStatus{JobID: "job_1", Phase: "running",
			Executor: "container", ClaimedAt: f.now.Add(-time.Minute)}, Output: []messages.OutputLine{
			{Stream: "stdout", Text: "hello from the job"},
			{Stream: "stderr", Text: "<script>alert(1)</script>"},
		}}}},
		fx: f,
	}
	pid := f.engine.Spawn(func() actor.Receiver { return sup }, "fakesup", actor.WithID(t.Name()))
	t.Cleanup(func() { <-f.engine.Poison(pid).Done() })
	// A generous timeout: a crash's restart is awaited within it.
	return New(Options{Engine: f.engine, Supervisor: pid, Listen: listen, Token: token,
		Timeout: testenv.Patience, OrchestratorID: "orch-test", Now: func() time.Time { return f.now },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

type call struct {
	method, path, host, auth string
	csrf                     bool
}

func do(h http.Handler, c call) *http.Response {
	r := httptest.NewRequest(c.method, c.path, nil)
	if c.host != "" {
		r.Host = c.host
	} else {
		r.Host = "127.0.0.1:9465"
	}
	if c.auth != "" {
		r.Header.Set("Authorization", c.auth)
	}
	if c.csrf {
		r.Header.Set(CSRFHeader, "1")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec.Result()
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestAccess(t *testing.T) {
	const token = "s3cret-admin-token"
	tests := []struct {
		name   string
		listen string
		token  secret.Value
		call   call
		code   int
	}{
		{"loopback, no token", "127.0.0.1:9465", "", call{method: "GET", path: "/api/actors"}, 200},
		{"loopback, localhost host", "127.0.0.1:9465", "", call{method: "GET", path: "/api/actors", host: "localhost:9465"}, 200},
		{"loopback, foreign Host (DNS rebinding)", "127.0.0.1:9465", "",
			call{method: "GET", path: "/api/actors", host: "evil.example:9465"}, 403},
		{"loopback, POST without the CSRF header", "127.0.0.1:9465", "",
			call{method: "POST", path: "/api/jobs/job_1/cancel"}, 403},
		{"loopback, POST with the CSRF header", "127.0.0.1:9465", "",
			call{method: "POST", path: "/api/jobs/job_1/cancel", csrf: true}, 202},
		{"elsewhere, no credentials", "0.0.0.0:9465", token, call{method: "GET", path: "/api/actors"}, 401},
		{"elsewhere, wrong bearer", "0.0.0.0:9465", token,
			call{method: "GET", path: "/api/actors", auth: "Bearer s3cret-admin-tokeN"}, 401},
		{"elsewhere, a prefix of the token", "0.0.0.0:9465", token,
			call{method: "GET", path: "/api/actors", auth: "Bearer s3cret"}, 401},
		{"elsewhere, bearer", "0.0.0.0:9465", token,
			call{method: "GET", path: "/api/actors", auth: "Bearer " + token, host: "orch.example:9465"}, 200},
		{"elsewhere, basic (a browser)", "0.0.0.0:9465", token,
			call{method: "GET", path: "/", auth: basic("admin", token), host: "orch.example:9465"}, 200},
		{"elsewhere, basic with the wrong password", "0.0.0.0:9465", token,
			call{method: "GET", path: "/", auth: basic(token, "x")}, 401},
		{"elsewhere, POST with token but no CSRF header", "0.0.0.0:9465", token,
			call{method: "POST", path: "/api/jobs/job_1/cancel", auth: "Bearer " + token}, 403},
		{"elsewhere without a token: closed", "10.0.0.5:9465", "", call{method: "GET", path: "/api/actors"}, 403},
		{"loopback with a token: required", "127.0.0.1:9465", token, call{method: "GET", path: "/api/actors"}, 401},
		{"kill is POST only", "127.0.0.1:9465", "", call{method: "GET", path: "/api/actors/kill/victim/v1"}, 405},
	}
	f := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(f.server(t, tt.listen, tt.token), tt.call)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tt.code, body)
			}
			if tt.code == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("401 without a Basic challenge: browsers could not log in")
			}
			if strings.Contains(string(body), token) {
				t.Errorf("the token appears in a response: %s", body)
			}
		})
	}
}

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestTreeAndJobs(t *testing.T) {
	f := newFixture(t)
	s := f.server(t, "127.0.0.1:9465", "")
	tree := decode[Tree](t, do(s, call{method: "GET", path: "/api/actors"}))
	var order []string
	for _, a := range tree.Actors {
		order = append(order, a.Kind)
	}
	if got := strings.Join(order, ","); got != "supervisor,poller,job" {
		t.Errorf("order %s", got)
	}
	if a := tree.Actors[2]; a.UptimeSeconds != 60 || a.Restarts != 0 || a.JobID != "job_1" {
		t.Errorf("job actor %+v", a)
	}
	if len(tree.Restarts) != 2 || tree.Restarts[0].Reason != "second" {
		t.Errorf("restarts not newest first: %+v", tree.Restarts)
	}
	jobs := decode[Jobs](t, do(s, call{method: "GET", path: "/api/jobs"}))
	if len(jobs.Jobs) != 1 || len(jobs.Jobs[0].Output) != 2 {
		t.Errorf("jobs %+v", jobs)
	}
}

func TestActions(t *testing.T) {
	f := newFixture(t)
	s := f.server(t, "127.0.0.1:9465", "")
	post := func(path string) (int, string) {
		resp := do(s, call{method: "POST", path: path, csrf: true})
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("/api/actors/kill/supervisor/root/job/nope"); code != 404 {
		t.Errorf("kill unknown: %d %s", code, body)
	}
	if code, body := post("/api/actors/kill/supervisor/root"); code != 409 {
		t.Errorf("kill root: %d %s", code, body)
	}
	if code, body := post("/api/jobs/job_2/cancel"); code != 404 {
		t.Errorf("cancel unknown: %d %s", code, body)
	}

	// The answer comes once the restart is counted.
	if code, body := post("/api/actors/crash/" + f.victim.ID); code != 202 || !strings.Contains(body, "restarts: 1") {
		t.Fatalf("crash: %d %s", code, body)
	}
	if code, body := post("/api/actors/kill/" + f.victim.ID); code != 202 || !strings.Contains(body, "not respawned") {
		t.Fatalf("kill: %d %s", code, body)
	}
	if f.engine.Registry.GetPID("victim", "v1") != nil {
		t.Error("the victim is still registered after kill")
	}
}

// A crash whose restart never shows (the poller here is listed but not
// running) waits for it no longer than the client does.
func TestAwaitRestartEndsWithTheRequest(t *testing.T) {
	f := newFixture(t)
	s := f.server(t, "127.0.0.1:9465", "")
	s.opts.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, "POST", "/api/actors/crash/supervisor/root/poller/main", nil)
	r.Host = "127.0.0.1:9465"
	r.Header.Set(CSRFHeader, "1")
	done := make(chan string, 1)
	go func() {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		done <- rec.Body.String()
	}()
	select {
	case body := <-done:
		if !strings.Contains(body, "has not reported a restart yet") {
			t.Errorf("answer %s", body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the crash request outlived its client by 20s")
	}
}

func TestSupervisorNotAnswering(t *testing.T) {
	f := newFixture(t)
	s := New(Options{Engine: f.engine, Supervisor: actor.NewPID(f.engine.Address(), "nobody/home"),
		Listen: "127.0.0.1:0", Timeout: 50 * time.Millisecond})
	for _, path := range []string{"/api/actors", "/api/jobs"} {
		if resp := do(s, call{method: "GET", path: path}); resp.StatusCode != 503 {
			t.Errorf("%s: %d, want 503", path, resp.StatusCode)
		}
	}
	resp := do(s, call{method: "GET", path: "/"})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "did not answer") {
		t.Errorf("the page must still render and say why it is empty: %d %s", resp.StatusCode, body)
	}
}

func TestStatusPage(t *testing.T) {
	f := newFixture(t)
	resp := do(f.server(t, "127.0.0.1:9465", ""), call{method: "GET", path: "/"})
	b, _ := io.ReadAll(resp.Body)
	page := string(b)
	for _, want := range []string{"orch-test", `data-pid="` + f.victim.ID + `"`, "hello from the job",
		`data-action="crash" data-id="` + f.victim.ID + `"`, "&lt;script&gt;alert(1)&lt;/script&gt;", "second"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, `data-action="kill" data-id="supervisor/root"`) {
		t.Error("the root supervisor has a kill button")
	}
	if !strings.Contains(page, `data-action="kill" data-id="`+f.victim.ID+`"`) {
		t.Error("the job actor has no kill button")
	}
	m := regexp.MustCompile(`<script nonce="([^"]+)">`).FindStringSubmatch(page)
	if m == nil || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "'nonce-"+m[1]+"'") {
		t.Errorf("script nonce and CSP disagree: %v / %s", m, resp.Header.Get("Content-Security-Policy"))
	}
}
