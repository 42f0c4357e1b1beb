package embedded

import (
	"encoding/json"
	"errors"
	"net/http"
)

// The variables routes: the internal ones the runtime helpers reach
// through the orchestrator (GET|PUT /api/internal/variables/{userId}/{key},
// as the real backend has them) and public ones for people and the
// variables CLI. The real backend cannot list a user's variables over the
// internal API; only the public API here can.

const (
	msgVariableNotFound = "Variable not found"
	msgValueNotString   = "Value must be a string"
)

// errValueNotString: a PUT whose body has no string "value".
var errValueNotString = errors.New("value must be a string")

func (s *Server) handleGetVariable(w http.ResponseWriter, r *http.Request) {
	s.getVariable(w, r, r.PathValue("userId"))
}

// handleSetVariable parses the body first, as every real POST/PUT route
// does: an empty or broken body is a 500, a missing or non-string value a
// 400.
func (s *Server) handleSetVariable(w http.ResponseWriter, r *http.Request) {
	value, err := readValue(r)
	switch {
	case errors.Is(err, errValueNotString):
		writeError(w, http.StatusBadRequest, msgValueNotString)
		return
	case err != nil:
		writeFailure(w, err, "")
		return
	}
	if _, err := s.store.setVariable(r.Context(), r.PathValue("userId"), r.PathValue("key"), value, s.now()); err != nil {
		writeFailure(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

func (s *Server) getVariable(w http.ResponseWriter, r *http.Request, userID string) {
	key := r.PathValue("key")
	if !storable(userID) || !storable(key) {
		writeFailure(w, errInvalidText, "")
		return
	}
	v, err := s.store.Variable(r.Context(), userID, key)
	if err != nil {
		writeFailure(w, err, msgVariableNotFound)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// readValue reads {"value":"<string>"}.
func readValue(r *http.Request) (string, error) {
	var body map[string]json.RawMessage
	if err := readBody(r, &body); err != nil {
		return "", err
	}
	var value *string
	if raw, ok := body["value"]; !ok || json.Unmarshal(raw, &value) != nil || value == nil {
		return "", errValueNotString
	}
	return *value, nil
}

// publicUser is the ?userId= of a public variables call, DefaultUserID
// when absent.
func publicUser(r *http.Request) string {
	if u := r.URL.Query().Get("userId"); u != "" {
		return u
	}
	return DefaultUserID
}

func (s *Server) handlePublicVariables(w http.ResponseWriter, r *http.Request) {
	user := publicUser(r)
	vars, err := s.store.Variables(r.Context(), user)
	if err != nil {
		writeFailure(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"userId": user, "variables": vars})
}

func (s *Server) handlePublicGetVariable(w http.ResponseWriter, r *http.Request) {
	s.getVariable(w, r, publicUser(r))
}

// handlePublicSetVariable answers the variable as stored. Unlike the
// internal route, a bad body is the caller's mistake: 400.
func (s *Server) handlePublicSetVariable(w http.ResponseWriter, r *http.Request) {
	value, err := readValue(r)
	switch {
	case errors.Is(err, errInvalidText):
		writeFailure(w, err, "")
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "want a body {\"value\": \"<string>\"}: "+err.Error())
		return
	}
	v, err := s.store.setVariable(r.Context(), publicUser(r), r.PathValue("key"), value, s.now())
	if err != nil {
		writeFailure(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, v)
}
