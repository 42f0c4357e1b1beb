package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// cmdServe runs the embedded backend alone: `run` workers on this or other
// machines claim its jobs through the internal API, as they would the real
// backend's.
func cmdServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8089", "address of the embedded backend (0.0.0.0:8089 for workers on other machines)")
	data := fs.String("data", "cronium-data", "directory of the embedded database and of the generated token")
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	token, path, created, err := serveToken(*data)
	if err != nil {
		return usageError(fmt.Errorf("api token: %w", err))
	}
	be, err := serveEmbedded(*listen, *data, token)
	if err != nil {
		return err
	}
	defer be.stop()
	fmt.Printf("Cronium embedded backend\n")
	fmt.Printf("  listening   http://%s (jobs kept in %s)\n", be.addr, filepath.Join(*data, "cronium.db"))
	switch {
	case path == "":
		fmt.Printf("  api token   from the environment\n")
	case created:
		fmt.Printf("  api token   generated, kept in %s\n", path)
	default:
		fmt.Printf("  api token   kept in %s\n", path)
	}
	fmt.Printf("Workers: CRONIUM_API_URL=http://<this host>:<port> CRONIUM_API_TOKEN=<the token> cronium-orchestrator run\n")
	fmt.Printf("  (and CRONIUM_LIVE_LOGS_URL=<the same URL> for followers to see each line as it is printed)\n")
	if be.public {
		fmt.Printf("The backend listens beyond loopback: its public API (submit) requires the token too.\n")
	}
	os.Stdout.Sync()
	ctx, stop := signalContext()
	defer stop()
	<-ctx.Done()
	return nil
}
