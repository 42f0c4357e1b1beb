// Package admin is the operator's handle on the actor system: a JSON API
// to list the actor tree and running jobs, kill or crash an actor and
// cancel a job, and a server-rendered status page over the same data.
//
// It talks to the supervisor only through the engine: Request (always with
// a timeout, always followed by Result) to read, Stop and a Crash message
// to act. It never blocks an actor.
//
// Access: on a loopback address without a token the API is open to the
// machine, with two guards against browsers being used from elsewhere:
// the Host header must name a loopback host (DNS rebinding), and every
// POST must carry an X-Cronium-Admin header (cross-site forms cannot).
// Bound elsewhere, or whenever a token is configured, every request needs
// it: "Authorization: Bearer TOKEN", or Basic auth with the token as
// password (so that a browser can open the status page).
package admin

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/secret"
)

// CSRFHeader must be set on every POST; the CLI and the status page do.
const CSRFHeader = "X-Cronium-Admin"

// Options configure the handler.
type Options struct {
	Engine     *actor.Engine
	Supervisor *actor.PID
	// Listen is the address the handler is served on (admin.listen); a
	// non-loopback address requires Token.
	Listen string
	Token  secret.Value
	// Timeout bounds each request to the supervisor; default 2s.
	Timeout time.Duration
	// OrchestratorID and Version are shown on the status page.
	OrchestratorID, Version string
	Logger                  *slog.Logger
	Now                     func() time.Time // default time.Now
}

// Server is the admin handler.
type Server struct {
	opts        Options
	tokenNeeded bool
	mux         *http.ServeMux
}

// New returns the admin handler.
func New(opts Options) *Server {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, mux: http.NewServeMux(),
		tokenNeeded: opts.Token.IsSet() || !config.IsLoopback(opts.Listen)}
	s.mux.HandleFunc("GET /{$}", s.servePage)
	s.mux.HandleFunc("GET /live", s.serveLive)
	s.mux.HandleFunc("GET /api/actors", s.serveActors)
	s.mux.HandleFunc("GET /api/jobs", s.serveJobs)
	s.mux.HandleFunc("POST /api/actors/kill/{id...}", s.serveKill)
	s.mux.HandleFunc("POST /api/actors/crash/{id...}", s.serveCrash)
	s.mux.HandleFunc("POST /api/jobs/{id}/cancel", s.serveCancel)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if code, why := s.refuse(r); code != 0 {
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="cronium-orchestrator admin", charset="UTF-8"`)
		}
		writeError(w, code, why)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY") // the kill buttons must not be clickjacked
	s.mux.ServeHTTP(w, r)
}

// refuse returns a status and reason when r may not be served.
func (s *Server) refuse(r *http.Request) (int, string) {
	if s.tokenNeeded {
		if !s.opts.Token.IsSet() {
			return http.StatusForbidden, "admin.token is not set; the admin API is disabled on a non-loopback address"
		}
		if !s.authorized(r) {
			return http.StatusUnauthorized, "missing or wrong admin token (Authorization: Bearer <admin.token>)"
		}
	} else if !loopbackHost(r.Host) {
		return http.StatusForbidden, "the admin API answers only to a loopback host name without admin.token"
	}
	if r.Method == http.MethodPost && r.Header.Get(CSRFHeader) == "" {
		return http.StatusForbidden, "POST requests need the " + CSRFHeader + " header"
	}
	return 0, ""
}

// authorized compares in constant time, so response timing does not
// reveal how much of a guess was right.
func (s *Server) authorized(r *http.Request) bool {
	got := ""
	h := r.Header.Get("Authorization")
	switch scheme, rest, _ := strings.Cut(h, " "); strings.ToLower(scheme) {
	case "bearer":
		got = strings.TrimSpace(rest)
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
		if err != nil {
			return false
		}
		_, got, _ = strings.Cut(string(raw), ":")
	}
	want := s.opts.Token.Reveal()
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// APIError is the body of every error answer of the API.
type APIError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, APIError{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
