package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/daemon"
	"github.com/cronium/orchestrator/secret"
)

// cmdStandalone runs the embedded backend and the daemon in one process:
// the daemon reaches the backend over HTTP through the same client it uses
// against the real one.
func cmdStandalone(args []string) error {
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8089", "address of the embedded backend (internal and public API)")
	data := fs.String("data", "cronium-data", "directory of the embedded database (jobs survive restarts)")
	load := configFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	cfg, err := load()
	if err != nil {
		return usageError(err)
	}
	be, err := serveEmbedded(*listen, *data, randomToken())
	if err != nil {
		return err
	}
	defer be.stop()

	cfg.API.URL = "http://" + be.addr
	cfg.API.Token = be.token
	if cfg.Logs.LiveURL == "" {
		// The embedded backend takes live lines too: followers see each
		// line as it is printed, not at the next snapshot.
		cfg.Logs.LiveURL = cfg.API.URL
	}
	if cfg.Orchestrator.StateDir == config.Default().Orchestrator.StateDir {
		cfg.Orchestrator.StateDir = filepath.Join(*data, "state")
	}
	if err := cfg.Validate(); err != nil {
		return usageError(err)
	}
	d, err := newDaemon(cfg, daemon.Options{Logger: newLogger(cfg.Log), Version: version})
	if err != nil {
		return usageError(err)
	}
	printBanner(cfg, be.addr, *data, be.public)
	ctx, stop := signalContext()
	defer stop()
	return d.Run(ctx)
}

func printBanner(cfg config.Config, addr, data string, needsToken bool) {
	server := "http://" + addr
	fmt.Printf("Cronium standalone orchestrator\n")
	fmt.Printf("  embedded backend  %s (jobs kept in %s)\n", server, filepath.Join(data, "cronium.db"))
	if cfg.HTTP.Listen != "" {
		fmt.Printf("  metrics, health   http://%s/metrics, /healthz, /readyz\n", cfg.HTTP.Listen)
	}
	if cfg.Admin.Listen != "" {
		fmt.Printf("  admin, status     http://%s/\n", cfg.Admin.Listen)
	}
	flagServer := ""
	if addr != "127.0.0.1:8089" {
		flagServer = " --server " + server
	}
	fmt.Printf("Submit a job:\n  cronium-orchestrator submit%s --follow script.sh\n", flagServer)
	fmt.Printf("  echo 'echo hello from $(hostname)' | cronium-orchestrator submit%s --follow -\n", flagServer)
	if needsToken {
		fmt.Printf("The backend listens beyond loopback: its public API requires the internal token.\n")
	}
}

func randomToken() secret.Value {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err) // the kernel's random source failing is not recoverable
	}
	return secret.Value(hex.EncodeToString(b))
}

func shutdownServer(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "embedded backend shutdown:", err)
	}
}
