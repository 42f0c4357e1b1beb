package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/cronium/orchestrator/admin"
)

const actorsUsage = `usage:
  cronium-orchestrator actors [--admin URL] [--json]   the actor tree
  cronium-orchestrator actors kill ID                  stop an actor (the supervisor respawns it)
  cronium-orchestrator actors crash ID                 make an actor panic (exercises the restart path)
ID is an actor's full id as the tree shows it, e.g. supervisor/root/job/job_ABC.
`

func cmdActors(args []string) error { return runActors(args, os.Stdout) }

func runActors(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("actors", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), actorsUsage); fs.PrintDefaults() }
	asJSON := fs.Bool("json", false, "print the tree as JSON")
	client := adminFlags(fs)
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return usageError(err)
	}
	c := client()
	switch {
	case len(rest) == 0:
		return printTree(c, out, *asJSON)
	case len(rest) == 2 && (rest[0] == "kill" || rest[0] == "crash"):
		return actorAction(c, out, rest[0], rest[1])
	}
	return usageError(fmt.Errorf("unexpected arguments %q\n%s", strings.Join(rest, " "), actorsUsage))
}

func actorAction(c adminClient, out io.Writer, action, id string) error {
	var res admin.ActionResult
	if err := c.call(http.MethodPost, "/api/actors/"+action+"/"+escapeID(id), &res); err != nil {
		return fmt.Errorf("%s %s: %w", action, id, err)
	}
	fmt.Fprintf(out, "%s %s: %s\n", action, id, res.Result)
	return nil
}

// escapeID escapes each segment of a PID id; the slashes stay, since the
// API takes the id as the rest of the path.
func escapeID(id string) string {
	parts := strings.Split(id, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func printTree(c adminClient, out io.Writer, asJSON bool) error {
	var t admin.Tree
	if err := c.call(http.MethodGet, "/api/actors", &t); err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(t)
	}
	renderTree(out, t)
	return nil
}

// renderTree prints the root, then its children with tree branches; the
// admin API already orders them (poller, then each job's job and log
// actors together).
func renderTree(out io.Writer, t admin.Tree) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tJOB\tSTATE\tRESTARTS\tUPTIME")
	var children []admin.Actor
	for _, a := range t.Actors {
		if a.IsRoot() {
			fmt.Fprintln(tw, actorRow("", a))
		} else {
			children = append(children, a)
		}
	}
	for i, a := range children {
		branch := "├─ "
		if i == len(children)-1 {
			branch = "└─ "
		}
		fmt.Fprintln(tw, actorRow(branch, a))
	}
	_ = tw.Flush()
	if len(t.Restarts) == 0 {
		return
	}
	fmt.Fprintln(out, "\nRecent restarts (newest first):")
	for i, r := range t.Restarts {
		if i == 10 {
			fmt.Fprintf(out, "  ... %d more (--json lists them all)\n", len(t.Restarts)-i)
			break
		}
		fmt.Fprintf(out, "  %s  %-10s %s: %s\n", admin.FormatClock(r.At), r.Kind, r.PID, r.Reason)
	}
}

func actorRow(branch string, a admin.Actor) string {
	job := a.JobID
	if job == "" {
		job = "-"
	}
	return fmt.Sprintf("%s%s\t%s\t%s\t%s\t%d\t%s", branch, a.PID, a.Kind, job, a.State, a.Restarts,
		admin.FormatUptime(a.UptimeSeconds))
}
