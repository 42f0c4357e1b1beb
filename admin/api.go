package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/messages"
)

// Actor is one actor in the API's tree.
type Actor struct {
	messages.ActorInfo
	UptimeSeconds float64 `json:"uptimeSeconds"`
}

// Tree is GET /api/actors.
type Tree struct {
	Actors   []Actor                 `json:"actors"`
	Restarts []messages.RestartEvent `json:"restarts"` // newest first
}

// Jobs is GET /api/jobs.
type Jobs struct {
	Jobs []messages.JobInfo `json:"jobs"`
}

// ActionResult is the answer to kill, crash and cancel.
type ActionResult struct {
	Action string `json:"action"`
	Target string `json:"target"`
	Result string `json:"result"`
}

var errNoAnswer = errors.New("the supervisor did not answer in time")

// ask sends msg to the supervisor and waits for its answer, bounded.
func ask[T any](s *Server, msg any) (T, error) {
	var zero T
	v, err := s.opts.Engine.Request(s.opts.Supervisor, msg, s.opts.Timeout).Result()
	if err != nil {
		return zero, fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	t, ok := v.(T)
	if !ok {
		return zero, fmt.Errorf("the supervisor answered %T, want %T", v, zero)
	}
	return t, nil
}

func (s *Server) tree() (Tree, error) {
	t, err := ask[messages.ActorTree](s, messages.ListActors{})
	if err != nil {
		return Tree{}, err
	}
	now := s.opts.Now()
	out := Tree{Actors: make([]Actor, 0, len(t.Actors)), Restarts: make([]messages.RestartEvent, 0, len(t.Restarts))}
	for _, a := range t.Actors {
		up := 0.0
		if !a.StartedAt.IsZero() {
			up = now.Sub(a.StartedAt).Round(time.Second).Seconds()
		}
		out.Actors = append(out.Actors, Actor{ActorInfo: a, UptimeSeconds: up})
	}
	// The root, the poller, then each job's job and log actors together.
	sort.Slice(out.Actors, func(i, j int) bool {
		a, b := out.Actors[i], out.Actors[j]
		if (a.JobID == "") != (b.JobID == "") {
			return a.JobID == ""
		}
		if a.JobID != b.JobID {
			return a.JobID < b.JobID
		}
		return slices.Index(messages.ActorKinds, a.Kind) < slices.Index(messages.ActorKinds, b.Kind)
	})
	for i := len(t.Restarts) - 1; i >= 0; i-- {
		out.Restarts = append(out.Restarts, t.Restarts[i])
	}
	return out, nil
}

func (s *Server) jobs(lines int) (Jobs, error) {
	l, err := ask[messages.JobList](s, messages.ListJobs{Lines: lines})
	if err != nil {
		return Jobs{}, err
	}
	if l.Jobs == nil {
		l.Jobs = []messages.JobInfo{}
	}
	return Jobs{Jobs: l.Jobs}, nil
}

func (s *Server) serveActors(w http.ResponseWriter, _ *http.Request) {
	t, err := s.tree()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) serveJobs(w http.ResponseWriter, r *http.Request) {
	lines, err := strconv.Atoi(r.URL.Query().Get("lines"))
	if err != nil {
		lines = tailLines
	}
	j, err := s.jobs(lines)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// find returns the actor with PID id from the supervisor's tree: only
// supervised actors can be targeted, never the engine's own or responses.
func (s *Server) find(w http.ResponseWriter, id string) (messages.ActorInfo, bool) {
	t, err := ask[messages.ActorTree](s, messages.ListActors{})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return messages.ActorInfo{}, false
	}
	if a, ok := lookup(t, id); ok {
		return a, true
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no actor %q (GET /api/actors lists them)", id))
	return messages.ActorInfo{}, false
}

func (s *Server) serveKill(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	a, ok := s.find(w, id)
	if !ok {
		return
	}
	if a.IsRoot() {
		writeError(w, http.StatusConflict, "stopping the root supervisor would stop every job with nothing to "+
			"respawn it; crash it instead, or send the process SIGTERM")
		return
	}
	s.opts.Logger.Warn("admin: killing actor", "pid", id, "kind", a.Kind, "job_id", a.JobID, "remote", r.RemoteAddr)
	s.opts.Engine.Stop(actor.NewPID(s.opts.Engine.Address(), id))
	writeJSON(w, http.StatusAccepted, ActionResult{Action: "kill", Target: id, Result: s.awaitRestart(r.Context(), a)})
}

func (s *Server) serveCrash(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	a, ok := s.find(w, id)
	if !ok {
		return
	}
	s.opts.Logger.Warn("admin: crashing actor", "pid", id, "kind", a.Kind, "job_id", a.JobID, "remote", r.RemoteAddr)
	kit.Send(s.opts.Engine, actor.NewPID(s.opts.Engine.Address(), id),
		messages.Crash{Reason: "crashed on purpose from the admin API"})
	writeJSON(w, http.StatusAccepted, ActionResult{Action: "crash", Target: id, Result: s.awaitRestart(r.Context(), a)})
}

// awaitRestart waits, bounded by the timeout and by the request, until
// the supervisor has counted the actor's restart, so that the answer says
// what happened and the next scrape of /metrics already shows it.
func (s *Server) awaitRestart(ctx context.Context, before messages.ActorInfo) string {
	const pending = "requested; the supervisor has not reported a restart yet"
	deadline := time.NewTimer(s.opts.Timeout)
	defer deadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		t, err := ask[messages.ActorTree](s, messages.ListActors{})
		if err != nil {
			return pending
		}
		a, found := lookup(t, before.PID)
		switch {
		case !found:
			return "stopped; not respawned (its job had ended, or its restart budget was spent)"
		case a.Restarts > before.Restarts:
			return fmt.Sprintf("restarted by the supervisor (restarts: %d)", a.Restarts)
		}
		select {
		case <-poll.C:
		case <-deadline.C:
			return pending
		case <-ctx.Done(): // the client is gone
			return pending
		}
	}
}

func lookup(t messages.ActorTree, id string) (messages.ActorInfo, bool) {
	for _, a := range t.Actors {
		if a.PID == id {
			return a, true
		}
	}
	return messages.ActorInfo{}, false
}

func (s *Server) serveCancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	found, err := ask[bool](s, messages.CancelJob{JobID: id, Reason: "cancelled by an operator (admin API)"})
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case !found:
		writeError(w, http.StatusNotFound, fmt.Sprintf("no running job %q", id))
	default:
		s.opts.Logger.Warn("admin: cancelling job", "job_id", id, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusAccepted, ActionResult{Action: "cancel", Target: id,
			Result: "cancel requested; the job stops and is reported cancelled"})
	}
}
