package embedded

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cronium/orchestrator/secret"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	Token       secret.Value     // bearer token of the internal API; empty: every internal call is refused
	PublicToken secret.Value     // bearer token of the public API; empty: open
	Now         func() time.Time // nil: time.Now
}

// Server serves the internal API under /api/internal/, the public one
// under /api/jobs and /api/variables, and live lines at
// /broadcast/log-line (see livelines.go). It implements http.Handler and
// starts nothing.
type Server struct {
	store *Store
	opts  ServerOptions
	mux   *http.ServeMux

	released    chan struct{} // closed by ReleaseHeld
	releaseOnce sync.Once
	holding     atomic.Int64 // requests being held now

	live liveStore // lines of running jobs (POST /broadcast/log-line)
}

// NewServer returns a Server for store.
func NewServer(store *Store, opts ServerOptions) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{store: store, opts: opts, mux: http.NewServeMux(), released: make(chan struct{})}
	s.routeInternal()
	s.routePublic()
	// Unauthenticated, as Cronium's Socket.IO server: lines are only
	// shown, for jobs that run now.
	s.mux.HandleFunc("POST /broadcast/log-line", s.handleLiveLine)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) now() time.Time { return s.opts.Now() }

// internal guards an internal handler with the internal token. Like the
// real routes, authentication comes before anything else, body included.
func (s *Server) internal(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !bearerOK(r, s.opts.Token, false) {
			writeError(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		h(w, r)
	}
}

func (s *Server) public(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !bearerOK(r, s.opts.PublicToken, true) {
			writeError(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		h(w, r)
	}
}

// bearerOK compares in constant time; an unset token refuses everything,
// unless openWhenUnset.
func bearerOK(r *http.Request, token secret.Value, openWhenUnset bool) bool {
	if !token.IsSet() {
		return openWhenUnset
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token.Reveal())) == 1
}

// maxBody bounds a request body (a final output of several MiB is normal).
const maxBody = 64 << 20

// errInvalidText is PostgreSQL's refusal of NUL bytes and invalid UTF-8
// in text and jsonb, which the real backend turns into a 500.
var errInvalidText = errors.New(`invalid byte sequence for encoding "UTF8"`)

// errBadBody is what request.json() throws on an empty or broken body.
var errBadBody = errors.New("unexpected end of JSON input")

// readBody decodes a POST/PUT body the way the real handlers do: an empty
// or non-JSON body is a 500, and so (after PostgreSQL) is any string with
// a NUL byte or invalid UTF-8. into points to a struct or a map, so the
// body must be an object (or null); nil checks just that.
func readBody(r *http.Request, into any) error {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if !utf8.Valid(data) {
		return errInvalidText
	}
	// Valid JSON can carry a NUL only as the escape \u0000: only then is
	// the document walked (a match may be an escaped backslash).
	if bytes.Contains(data, []byte(`\u0000`)) {
		var generic any
		if err := json.Unmarshal(data, &generic); err != nil {
			return errBadBody
		}
		if hasNUL(generic) {
			return errInvalidText
		}
	}
	if into == nil {
		into = &struct{}{}
	}
	if err := json.Unmarshal(data, into); err != nil {
		// Unmarshal checks the syntax of the whole body before decoding.
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return errBadBody
		}
		return fmt.Errorf("decode body: %w", err)
	}
	return nil
}

func hasNUL(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.IndexByte(v, 0) >= 0
	case []any:
		for _, e := range v {
			if hasNUL(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if strings.IndexByte(k, 0) >= 0 || hasNUL(e) {
				return true
			}
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	w.Header().Set("Content-Type", "application/json")
	if err := enc.Encode(v); err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":"Internal server error"}`)
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeFailure answers a store or body error: notFound names what was
// missing; invalid text and everything else are 500s, as in the backend.
func writeFailure(w http.ResponseWriter, err error, notFound string) {
	switch {
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, notFound)
	case errors.Is(err, errInvalidText):
		writeError(w, http.StatusInternalServerError, errInvalidText.Error())
	default:
		writeJSON(w, http.StatusInternalServerError, map[string]string{
			"error": "Internal server error", "details": err.Error()})
	}
}
