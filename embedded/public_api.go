package embedded

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/cronium/orchestrator/backend"
)

func (s *Server) routePublic() {
	for pattern, h := range map[string]http.HandlerFunc{
		"POST /api/jobs":             s.handleSubmit,
		"GET /api/jobs":              s.handleList,
		"GET /api/jobs/{id}":         s.handleJob,
		"GET /api/jobs/{id}/events":  s.handleEvents,
		"GET /api/jobs/{id}/output":  s.handleOutput,
		"POST /api/jobs/{id}/cancel": s.handleCancel,
		"GET /api/variables":         s.handlePublicVariables,
		"GET /api/variables/{key}":   s.handlePublicGetVariable,
		"PUT /api/variables/{key}":   s.handlePublicSetVariable,
	} {
		s.mux.HandleFunc(pattern, s.public(h))
	}
}

func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	var req SubmitRequest
	if err := readBody(r, &req); err != nil {
		if errors.Is(err, errInvalidText) {
			writeFailure(w, err, "")
			return
		}
		writeError(w, http.StatusBadRequest, "invalid job: "+err.Error())
		return
	}
	id, err := s.store.submit(r.Context(), req, s.now())
	var invalid *invalidError
	if errors.As(err, &invalid) {
		writeError(w, http.StatusBadRequest, invalid.Error())
		return
	}
	if err != nil {
		writeFailure(w, err, "")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (s *Server) handleJob(w http.ResponseWriter, r *http.Request) {
	v, err := s.store.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		writeFailure(w, err, msgJobNotFound)
		return
	}
	v.Output = s.live.view(v.ID, v.Output)
	writeJSON(w, http.StatusOK, v)
}

// handleOutput answers the job's output; with after (a version it
// returned) and wait (seconds), once the output's version differs, or
// when the wait passes.
func (s *Server) handleOutput(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := parseAfter(q.Get("after"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	wait, err := parseWait(q.Get(backend.QueryWait))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	o, err := s.outputWaiting(r.Context(), r.PathValue("id"), after, wait)
	if err != nil {
		writeFailure(w, err, msgJobNotFound)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := getJob(r.Context(), s.store.db, id); err != nil {
		writeFailure(w, err, msgJobNotFound)
		return
	}
	events, err := s.store.Events(r.Context(), id)
	if err != nil {
		writeFailure(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events})
}

// List limits: a default page and a ceiling.
const (
	defaultListLimit = 50
	maxListLimit     = 1000
)

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	limit := defaultListLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "limit: want a positive integer")
			return
		}
		limit = min(n, maxListLimit)
	}
	jobs, err := s.store.List(r.Context(), r.URL.Query().Get("status"), limit)
	if err != nil {
		writeFailure(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	err := s.store.cancel(r.Context(), r.PathValue("id"), s.now())
	if errors.Is(err, errFinished) {
		writeError(w, http.StatusConflict, "Job already finished")
		return
	}
	if err != nil {
		writeFailure(w, err, msgJobNotFound)
		return
	}
	s.handleJob(w, r)
}
