package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/cronium/orchestrator/admin"
)

func cmdCancel(args []string) error { return runCancel(args, os.Stdout) }

// runCancel cancels a running job through the admin API: it stops and is
// reported cancelled, as if cancelled in Cronium.
func runCancel(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("cancel", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: cronium-orchestrator cancel [--admin URL] JOB_ID")
		fs.PrintDefaults()
	}
	client := adminFlags(fs)
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError(err)
	}
	if len(rest) != 1 {
		return usageError(fmt.Errorf("want one job id, got %d arguments", len(rest)))
	}
	id := rest[0]
	var res admin.ActionResult
	if err := client().call(http.MethodPost, "/api/jobs/"+url.PathEscape(id)+"/cancel", &res); err != nil {
		if isNotFound(err) {
			return fmt.Errorf("cancel %s: no such job is running here (a queued or finished job cannot be cancelled from the orchestrator)", id)
		}
		return fmt.Errorf("cancel %s: %w", id, err)
	}
	fmt.Fprintf(out, "cancel %s: %s\n", id, res.Result)
	return nil
}
