package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/secret"
)

// faultyBackend is the embedded backend (real store, real handlers) behind
// a switchboard of faults: what a misbehaving Cronium backend, or a proxy
// in front of it, could answer. With no fault set it passes everything
// through.
//
// Faults that concern one job are keyed by the job's name
// (metadata.eventName), which the test chooses before it submits the job:
// the orchestrator may claim a job before Submit even returns its id.
type faultyBackend struct {
	store *embedded.Store
	url   string
	token secret.Value
	inner http.Handler

	mu sync.Mutex
	// everyCall, when set, answers every request it returns true for
	// (500s, 401s, HTML pages): the backend is down or misconfigured.
	everyCall func(w http.ResponseWriter, r *http.Request) bool
	// truncate cuts each queue answer in half, after the backend claimed
	// its jobs.
	truncate bool
	// batch, when positive, replaces the batchSize of the next poll, and
	// ghosts synthetic jobs are appended to its answer, then the answer's
	// first job once more: a backend that hands out more than was asked
	// for.
	batch, ghosts int
	// rewrites change a job in the queue answer (once), by job name.
	rewrites map[string]func(job map[string]any)
	// duplicate lists job names sent twice in the answer that claims them.
	duplicate map[string]bool
	// createFails lists job names whose execution create answers 500.
	createFails map[string]bool
	names       map[string]string // job id → name, learned from the queue answers
	aliases     map[string]string // id the orchestrator was given → the backend's id
	ghostCalls  map[string][]string
	ghostAsked  int         // requests about synthetic jobs
	pollTimes   []time.Time // when each queue request arrived
}

func newFaultyBackend(t testing.TB) *faultyBackend {
	t.Helper()
	store, err := embedded.Open(filepath.Join(t.TempDir(), "cronium.db"))
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyBackend{store: store, token: secret.Value("test-token-" + t.Name()),
		rewrites: map[string]func(map[string]any){}, duplicate: map[string]bool{}, createFails: map[string]bool{},
		names: map[string]string{}, aliases: map[string]string{}, ghostCalls: map[string][]string{}}
	f.inner = embedded.NewServer(store, embedded.ServerOptions{Token: f.token})
	srv := httptest.NewServer(f)
	f.url = srv.URL
	t.Cleanup(func() { srv.Close(); store.Close() })
	return f
}

// set changes the switchboard under its lock.
func (f *faultyBackend) set(change func(f *faultyBackend)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

// Polls is how many queue requests arrived.
func (f *faultyBackend) Polls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pollTimes)
}

// PollTimes are when the queue requests arrived.
func (f *faultyBackend) PollTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.pollTimes...)
}

// GhostAsked is how many requests were made about synthetic jobs.
func (f *faultyBackend) GhostAsked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ghostAsked
}

// GhostCalls are the requests made about synthetic jobs, by job id
// ("POST release", ...).
func (f *faultyBackend) GhostCalls() map[string][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string][]string, len(f.ghostCalls))
	for id, calls := range f.ghostCalls {
		out[id] = append([]string(nil), calls...)
	}
	return out
}

const ghostPrefix = "ghost_"

func (f *faultyBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	everyCall := f.everyCall
	if r.URL.Path == "/api/internal/jobs/queue" {
		f.pollTimes = append(f.pollTimes, time.Now())
	}
	f.mu.Unlock()
	if everyCall != nil && everyCall(w, r) {
		return
	}
	jobPath, isJob := strings.CutPrefix(r.URL.Path, "/api/internal/jobs/")
	id, rest, _ := strings.Cut(jobPath, "/")
	switch {
	case r.URL.Path == "/api/internal/jobs/queue":
		f.serveQueue(w, r)
		return
	case r.URL.Path == "/api/internal/jobs/orphaned":
		f.serveOrphaned(w, r)
		return
	case isJob && strings.HasPrefix(id, ghostPrefix):
		f.serveGhost(w, r, id, rest)
		return
	case isJob:
		f.mu.Lock()
		real, aliased := f.aliases[id]
		f.mu.Unlock()
		if aliased {
			r.URL.Path = "/api/internal/jobs/" + real + "/" + rest
			r.URL.RawPath = ""
		}
	case strings.HasPrefix(r.URL.Path, "/api/internal/executions/") && strings.HasSuffix(r.URL.Path, "/create"):
		if f.failCreate(r) {
			writeJSONError(w, http.StatusInternalServerError, "Failed to create execution")
			return
		}
	}
	f.inner.ServeHTTP(w, r)
}

// failCreate reads an execution create's body (and puts it back) and says
// whether its job's creates fail.
func (f *faultyBackend) failCreate(r *http.Request) bool {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var b struct {
		JobID string `json:"jobId"`
	}
	_ = json.Unmarshal(body, &b)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.createFails[f.names[b.JobID]]
}

// serveGhost answers for synthetic jobs: a release is accepted, anything
// else is recorded (the test fails on it) and refused.
func (f *faultyBackend) serveGhost(w http.ResponseWriter, r *http.Request, id, rest string) {
	f.mu.Lock()
	f.ghostCalls[id] = append(f.ghostCalls[id], r.Method+" "+rest)
	f.ghostAsked++
	f.mu.Unlock()
	if r.Method == http.MethodPost && rest == "release" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"success":true}`)
		return
	}
	writeJSONError(w, http.StatusNotFound, "Job not found")
}

// serveOrphaned names jobs by the ids the orchestrator was given.
func (f *faultyBackend) serveOrphaned(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	f.inner.ServeHTTP(rec, r)
	f.mu.Lock()
	aliases := map[string]string{} // real id → alias, of the rows listed
	for alias, real := range f.aliases {
		if bytes.Contains(rec.Body.Bytes(), []byte(`"id":"`+real+`"`)) {
			aliases[real] = alias
		}
	}
	f.mu.Unlock()
	var rows []map[string]json.RawMessage // rows carry whole scripts: left as they are
	if len(aliases) == 0 || rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &rows) != nil {
		copyResponse(w, rec)
		return
	}
	for _, row := range rows {
		var id string
		if json.Unmarshal(row["id"], &id) == nil && aliases[id] != "" {
			row["id"] = json.RawMessage(aliases[id])
		}
	}
	body, _ := json.Marshal(rows)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// serveQueue lets the backend claim, then applies the faults to its answer.
func (f *faultyBackend) serveQueue(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	batch, ghosts, truncate := f.batch, f.ghosts, f.truncate
	f.mu.Unlock()
	if batch > 0 {
		q := r.URL.Query()
		q.Set("batchSize", strconv.Itoa(batch))
		r.URL.RawQuery = q.Encode()
	}
	rec := httptest.NewRecorder()
	f.inner.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		copyResponse(w, rec)
		return
	}
	var answer struct {
		Jobs []map[string]any `json:"jobs"`
	}
	dec := json.NewDecoder(rec.Body)
	dec.UseNumber() // timeouts are int64 nanoseconds
	if err := dec.Decode(&answer); err != nil {
		writeJSONError(w, http.StatusInternalServerError, "faultyBackend: "+err.Error())
		return
	}
	jobs := f.rewrite(answer.Jobs)
	if len(jobs) == 0 {
		ghosts = 0 // an empty queue: the giant answer waits for a job to copy
	} else if batch > 0 || ghosts > 0 {
		f.set(func(f *faultyBackend) { f.batch, f.ghosts = 0, 0 })
	}
	for i := range ghosts {
		ghost := map[string]any{}
		for k, v := range answer.Jobs[0] {
			ghost[k] = v
		}
		ghost["id"] = fmt.Sprintf("%s%05d", ghostPrefix, i)
		jobs = append(jobs, ghost)
	}
	if ghosts > 0 {
		jobs = append(jobs, jobs[0])
	}
	body, err := json.Marshal(map[string]any{"jobs": jobs, "count": len(jobs)})
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "faultyBackend: "+err.Error())
		return
	}
	if truncate {
		body = body[:len(body)/2]
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// rewrite learns the jobs' names and applies the per-job faults.
func (f *faultyBackend) rewrite(jobs []map[string]any) []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]any
	for _, job := range jobs {
		id, _ := job["id"].(string)
		meta, _ := job["metadata"].(map[string]any)
		name, _ := meta["eventName"].(string)
		f.names[id] = name
		if rw := f.rewrites[name]; rw != nil {
			delete(f.rewrites, name)
			rw(job)
			if alias, ok := job["id"].(json.Number); ok {
				f.aliases[alias.String()] = id
			}
		}
		out = append(out, job)
		if f.duplicate[name] {
			out = append(out, job)
		}
	}
	return out
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": msg})
	_, _ = w.Write(b)
}

// Faults of every call, for faultyBackend.everyCall.

// htmlPoll answers the poll with a 200 HTML page: a proxy's or a login page.
func htmlPoll(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != "/api/internal/jobs/queue" {
		return false
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please sign in</body></html>\n")
	return true
}

// status answers every call with code and the backend's error body.
func status(code int) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		writeJSONError(w, code, http.StatusText(code))
		return true
	}
}
