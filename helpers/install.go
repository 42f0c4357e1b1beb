// Package helpers serves Cronium's runtime helpers — cronium.input(),
// output(), getVariable(), setVariable(), setCondition(), getCondition(),
// event() — to the scripts of jobs, in Python, Node.js and Bash, without an
// import and in every place a job runs.
//
// The channel needs no network and no port: next to the script, the
// executor starts a small relay (relay.sh, POSIX sh) whose stdin and stdout
// reach the orchestrator (through docker exec, or an SSH session beside the
// job's own). The language shims run call.sh, which hands the relay one
// request through a FIFO in the helpers directory and waits for its answer
// on a FIFO of its own. Each request carries the execution's token, read
// from a file only the job's user can read. See assets/ for the scripts.
package helpers

import (
	_ "embed"
	"path"
	"strings"

	"github.com/cronium/orchestrator/executors"
)

// The scripts, each embedded by name: a missing one fails the build.
var (
	//go:embed assets/relay.sh
	relaySh []byte
	//go:embed assets/call.sh
	callSh []byte
	//go:embed assets/cronium.sh
	croniumSh []byte
	//go:embed assets/sitecustomize.py
	sitecustomizePy []byte
	//go:embed assets/cronium.js
	croniumJs []byte
)

// Names of the files in a helpers directory.
const (
	tokenFile = "token"
	relayFile = "relay.sh"
)

// Variables set in the script's environment.
const (
	EnvDir = "CRONIUM_HELPERS_DIR"
)

// install is the directory's files and the script's environment for a
// given token. Only the token differs between executions.
func install(dir, token string, env []executors.EnvVar) executors.Installation {
	files := []executors.File{
		{Name: tokenFile, Data: []byte(token), Mode: 0o400},
		{Name: relayFile, Data: relaySh, Mode: 0o444},
		{Name: "call.sh", Data: callSh, Mode: 0o444},
		{Name: "cronium.sh", Data: croniumSh, Mode: 0o444},
		{Name: "sitecustomize.py", Data: sitecustomizePy, Mode: 0o444},
		{Name: "cronium.js", Data: croniumJs, Mode: 0o444},
	}
	return executors.Installation{
		Files: files,
		Env:   environment(dir, env),
		// Started as soon as the script is: it waits for its files.
		Relay: []string{"/bin/sh", "-c", `while [ ! -r "$1/` + relayFile + `" ]; do sleep 0.05; done; exec /bin/sh "$1/` +
			relayFile + `" "$1"`, "cronium-relay", dir},
	}
}

// environment makes the helpers available in each language: Bash reads
// BASH_ENV before a script, Python imports sitecustomize from PYTHONPATH,
// Node.js preloads what NODE_OPTIONS --require names. The job's own
// PYTHONPATH and NODE_OPTIONS are kept, after ours.
func environment(dir string, env []executors.EnvVar) []executors.EnvVar {
	own := map[string]string{}
	for _, v := range env {
		own[v.Name] = v.Value
	}
	join := func(ours, theirs, sep string) string {
		if strings.TrimSpace(theirs) == "" {
			return ours
		}
		return ours + sep + theirs
	}
	return []executors.EnvVar{
		{Name: EnvDir, Value: dir},
		{Name: "BASH_ENV", Value: path.Join(dir, "cronium.sh")},
		{Name: "CRONIUM_BASH_ENV", Value: own["BASH_ENV"]}, // cronium.sh reads it in turn
		{Name: "PYTHONPATH", Value: join(dir, own["PYTHONPATH"], ":")},
		{Name: "NODE_OPTIONS", Value: join("--require "+path.Join(dir, "cronium.js"), own["NODE_OPTIONS"], " ")},
	}
}
