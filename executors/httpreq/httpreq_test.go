package httpreq

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/executors"
)

func TestRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(r.Method + " " + r.Header.Get("X-Test") + " " + string(body)))
		case "/missing":
			http.Error(w, "nope", http.StatusNotFound)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	}))
	defer srv.Close()

	tests := []struct {
		name       string
		path       string
		timeout    time.Duration
		wantOut    string
		wantOK     bool
		wantReason string
		timedOut   bool
	}{
		{name: "2xx succeeds", path: "/ok", wantOut: "POST yes {\"a\":1}", wantOK: true},
		{name: "non-2xx fails", path: "/missing", wantOut: "nope\n", wantReason: "HTTP 404 Not Found"},
		{name: "timeout", path: "/slow", timeout: 100 * time.Millisecond, timedOut: true, wantReason: "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			spec := executors.Spec{Timeout: tt.timeout, HTTP: &executors.HTTPRequest{
				Method: "POST", URL: srv.URL + tt.path, Headers: map[string]string{"X-Test": "yes"}, Body: `{"a":1}`}}
			res, err := New(nil).Run(context.Background(), spec, executors.Output{Stdout: &stdout, Stderr: &stderr})
			if err != nil {
				t.Fatal(err)
			}
			if res.Succeeded() != tt.wantOK || res.TimedOut != tt.timedOut || !strings.Contains(res.Reason, tt.wantReason) {
				t.Fatalf("result %+v", res)
			}
			if tt.wantOut != "" && stdout.String() != tt.wantOut {
				t.Fatalf("stdout %q", stdout.String())
			}
		})
	}
}

func TestRunRefusesToSendTwice(t *testing.T) {
	spec := executors.Spec{HTTP: &executors.HTTPRequest{Method: "GET", URL: "http://127.0.0.1:1/"}, Resume: executors.Resume{Resuming: true}}
	_, err := New(nil).Run(context.Background(), spec, executors.Output{Stdout: io.Discard, Stderr: io.Discard})
	if !errors.Is(err, executors.ErrNotResumable) {
		t.Fatalf("got %v", err)
	}
}

func TestConnectionErrorHidesQuery(t *testing.T) {
	spec := executors.Spec{HTTP: &executors.HTTPRequest{Method: "GET", URL: "http://127.0.0.1:1/x?token=s3cret"}}
	_, err := New(nil).Run(context.Background(), spec, executors.Output{Stdout: io.Discard, Stderr: io.Discard})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("got %v", err)
	}
}
