package executors

import (
	"context"
	"io"
	"io/fs"
)

// Helpers serves the runtime helpers (cronium.input(), output(),
// getVariable(), ...) of one execution. Executors install its files where
// the script runs and carry its calls: they start the relay next to the
// script (docker exec, an SSH session) and hand its stdin and stdout to
// Serve. What the calls mean is not theirs to know.
type Helpers interface {
	// Install is what the execution's helpers directory dir holds and the
	// environment that makes the helpers available to the script, given
	// the job's own environment env (which it may extend, as PYTHONPATH).
	Install(dir string, env []EnvVar) Installation
	// Serve answers calls read from requests on answers until requests
	// ends or ctx is done. server names the SSH server that relays them
	// ("" for a container).
	Serve(ctx context.Context, server string, requests io.Reader, answers io.Writer) error
}

// Installation is what Helpers.Install asks of an executor.
type Installation struct {
	Files []File
	// Env replaces the variables of the job's environment by these names,
	// and adds the others.
	Env []EnvVar
	// Relay is the argv that carries the calls; its stdin and stdout go to
	// Serve. It is started once the script runs, and again whenever the
	// executor follows the execution anew (a resumed run).
	Relay []string
}

// File is one file of an Installation, relative to its directory.
type File struct {
	Name string
	Data []byte
	Mode fs.FileMode
}
