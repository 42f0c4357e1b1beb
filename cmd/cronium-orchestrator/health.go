package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"
)

// cmdHealth asks a running orchestrator's /healthz (at http.listen, read
// from the same configuration as run): exit 0 when it answers 200. It is
// the image's HEALTHCHECK, which has no curl on an empty base.
func cmdHealth(args []string) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	load := configFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	cfg, err := load()
	if err != nil {
		return usageError(err)
	}
	url, err := healthURL(cfg.HTTP.Listen)
	if err != nil {
		return usageError(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("not healthy: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not healthy: %s answered %s", url, resp.Status)
	}
	fmt.Println("ok")
	return nil
}

// healthURL is /healthz on the address http.listen binds; a wildcard host
// is asked on loopback.
func healthURL(listen string) (string, error) {
	if listen == "" {
		return "", errors.New("http.listen is disabled: there is no /healthz to ask")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("http.listen %q: %w", listen, err)
	}
	if port == "0" {
		return "", fmt.Errorf("http.listen %q picks its port at start: set a fixed port to ask it", listen)
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}
