// Command cronium-orchestrator runs Cronium jobs: in Docker containers on
// this machine, or on servers over SSH. See `cronium-orchestrator help`.
package main

import (
	"errors"
	"fmt"
	"os"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

const usage = `cronium-orchestrator runs Cronium jobs in containers or over SSH.

Usage:
  cronium-orchestrator run [flags]           the daemon, against CRONIUM_API_URL
  cronium-orchestrator standalone [flags]    an embedded backend plus the daemon, in one process
  cronium-orchestrator serve [flags]         the embedded backend alone, for run workers here or elsewhere
  cronium-orchestrator submit [flags] FILE|- enqueue a script on the embedded backend
  cronium-orchestrator variables CMD [flags] get, set or list a user's variables on the embedded backend
  cronium-orchestrator validate [flags]      check the configuration, report every problem
  cronium-orchestrator actors [--json]       the actor tree of a running orchestrator (admin API)
  cronium-orchestrator actors kill|crash ID  stop an actor, or make it panic, to test restarts
  cronium-orchestrator cancel JOB_ID         cancel a job the running orchestrator runs
  cronium-orchestrator health [flags]        exit 0 when the running orchestrator's /healthz answers (HEALTHCHECK)
  cronium-orchestrator version

Run "cronium-orchestrator COMMAND -h" for a command's flags.
`

// exitError carries the process exit code of a failed command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	commands := map[string]func([]string) error{
		"run":        cmdRun,
		"standalone": cmdStandalone,
		"serve":      cmdServe,
		"submit":     cmdSubmit,
		"variables":  cmdVariables,
		"validate":   cmdValidate,
		"actors":     cmdActors,
		"cancel":     cmdCancel,
		"health":     cmdHealth,
		"version":    cmdVersion,
	}
	name, args := os.Args[1], os.Args[2:]
	if name == "help" || name == "-h" || name == "--help" {
		fmt.Print(usage)
		return
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "cronium-orchestrator: unknown command %q\n\n%s", name, usage)
		os.Exit(2)
	}
	if err := cmd(args); err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
			err = ee.err
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "cronium-orchestrator %s: %v\n", name, err)
		}
		os.Exit(code)
	}
}

func cmdVersion([]string) error {
	fmt.Printf("cronium-orchestrator %s (commit %s)\n", version, commit)
	return nil
}
