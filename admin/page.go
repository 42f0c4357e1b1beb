package admin

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

//go:embed status.html
var pageFS embed.FS

var pageTemplate = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"uptime": FormatUptime,
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return now.Sub(t).Round(time.Second).String() + " ago"
	},
	"clock": FormatClock,
}).ParseFS(pageFS, "status.html"))

// FormatUptime renders Actor.UptimeSeconds ("2m14s"), as the status page
// and the CLI show it.
func FormatUptime(seconds float64) string { return (time.Duration(seconds) * time.Second).String() }

// FormatClock renders a time of day in local time ("19:13:10"), as the
// status page and the CLI show restarts.
func FormatClock(t time.Time) string { return t.Local().Format("15:04:05") }

// pageData is what the status page shows.
type pageData struct {
	OrchestratorID, Version string
	Now                     time.Time
	Tree                    Tree
	Jobs                    Jobs
	Err                     string
	Nonce                   string
}

// tailLines is how much of each running job's output the page shows.
const tailLines = 20

func (s *Server) data() pageData {
	d := pageData{OrchestratorID: s.opts.OrchestratorID, Version: s.opts.Version, Now: s.opts.Now()}
	var err error
	if d.Tree, err = s.tree(); err == nil {
		d.Jobs, err = s.jobs(tailLines)
	}
	if err != nil {
		d.Err = err.Error()
	}
	return d
}

func (s *Server) servePage(w http.ResponseWriter, _ *http.Request) {
	d := s.data()
	d.Nonce = nonce()
	// The one inline script is allowed by its nonce; anything injected
	// (job output is untrusted) could not run even if escaping failed.
	w.Header().Set("Content-Security-Policy", fmt.Sprintf("default-src 'none'; script-src 'nonce-%s'; "+
		"style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		d.Nonce))
	render(w, "page", d)
}

// serveLive is the part of the page that the page's script refreshes.
func (s *Server) serveLive(w http.ResponseWriter, _ *http.Request) {
	render(w, "live", s.data())
}

func render(w http.ResponseWriter, name string, d pageData) {
	var b bytes.Buffer
	if err := pageTemplate.ExecuteTemplate(&b, name, d); err != nil {
		writeError(w, http.StatusInternalServerError, "render: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

func nonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
