package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/secret"
)

// backendServer is the embedded backend listening: `standalone` runs it
// beside the daemon, `serve` alone (for `run` workers on other machines).
type backendServer struct {
	addr   string
	token  secret.Value
	public bool // the public API wants the token too
	stop   func()
}

// serveEmbedded opens the database in data and serves the embedded backend
// on listen with token as the internal API's bearer token.
func serveEmbedded(listen, data string, token secret.Value) (*backendServer, error) {
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	store, err := embedded.Open(filepath.Join(data, "cronium.db"))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		store.Close()
		return nil, usageError(fmt.Errorf("embedded backend: %w", err))
	}
	var public secret.Value
	if !config.IsLoopback(ln.Addr().String()) {
		// Reachable from elsewhere: the public API wants the token too.
		public = token
	}
	api := embedded.NewServer(store, embedded.ServerOptions{Token: token, PublicToken: public})
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	// Shutdown waits for requests in flight: held polls and follows answer
	// at once instead of holding it up to their wait.
	srv.RegisterOnShutdown(api.ReleaseHeld)
	go srv.Serve(ln)
	return &backendServer{addr: ln.Addr().String(), token: token, public: public.IsSet(), stop: func() {
		shutdownServer(srv)
		store.Close()
	}}, nil
}

// tokenFileName is where `serve` keeps the token it generated, so that
// workers configured with it keep working across its restarts.
const tokenFileName = "api-token"

// serveToken is the internal API token of `serve`: CRONIUM_API_TOKEN (or
// INTERNAL_API_KEY) when set, else the one kept in data, else a new one
// written there (mode 0600). created tells the caller to say where it is.
func serveToken(data string) (token secret.Value, path string, created bool, err error) {
	for _, name := range []string{"CRONIUM_API_TOKEN", "INTERNAL_API_KEY"} {
		if v := os.Getenv(name); v != "" {
			return secret.Value(v), "", false, nil
		}
	}
	path = filepath.Join(data, tokenFileName)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", path, false, fmt.Errorf("%s is empty: remove it to have a new token generated", path)
		}
		return secret.Value(t), path, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", path, false, err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return "", path, false, err
	}
	token = randomToken()
	if err := os.WriteFile(path, []byte(token.Reveal()+"\n"), 0o600); err != nil {
		return "", path, false, err
	}
	return token, path, true, nil
}
