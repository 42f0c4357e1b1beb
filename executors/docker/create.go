package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"path"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
)

// Labels on every job container.
const (
	LabelManaged      = "cronium.managed"
	LabelOrchestrator = "cronium.orchestrator-id"
	LabelJob          = "cronium.job-id"
	LabelExecution    = "cronium.execution-id"
)

const (
	workDir   = "/work"
	filesDir  = workDir + "/.cronium"
	inputFile = filesDir + "/input.json"
	// EnvInputFile names the file holding the job's inputData as JSON.
	EnvInputFile = "CRONIUM_INPUT_FILE"

	// Docker refuses less than 6 MB of memory and less than 0.01 CPU; a
	// shell and docker-init need a few processes before the script runs;
	// /work must hold the unpacked script.
	minMemory = 6 << 20
	minCPUs   = 0.01
	minPids   = 8
	minDisk   = 1 << 20

	// The kernel refuses a single environment string longer than
	// MAX_ARG_STRLEN (32 pages) and all of argv and env together beyond
	// ARG_MAX (a quarter of the 8 MiB default stack).
	maxEnvString = 128<<10 - 1
	maxEnvTotal  = 1 << 20
)

// plan is everything needed to create one execution's container.
type plan struct {
	name   string
	config *container.Config
	host   *container.HostConfig
	files  []file
	relay  []string // the runtime helpers' relay; nil: none
}

// plan turns spec into a container configuration. It calls no API, so that
// the conversion is tested on its own.
func (e *Executor) plan(spec executors.Spec) (*plan, error) {
	if spec.ExecutionID == "" {
		return nil, fmt.Errorf("%w: no execution id", executors.ErrInvalidSpec)
	}
	if spec.Script == nil {
		return nil, fmt.Errorf("%w: the docker executor runs scripts and the job has none", executors.ErrInvalidSpec)
	}
	lang := spec.Script.Language
	img, interp := e.opts.Images[lang], interpreters[lang]
	if img == "" || len(interp) == 0 {
		return nil, fmt.Errorf("%w: no image for script language %q", executors.ErrInvalidSpec, lang)
	}
	dir, err := scriptDir(spec.Script.WorkDir)
	if err != nil {
		return nil, err
	}
	var helpers executors.Installation
	if spec.Helpers != nil {
		helpers = spec.Helpers.Install(filesDir, spec.Environment())
	}
	env, err := e.environment(spec, helpers.Env)
	if err != nil {
		return nil, err
	}
	script := "script" + lang.FileExt()
	cmd := append(append([]string{}, interp...), filesDir+"/"+script)
	p := &plan{
		name: containerName(spec.ExecutionID),
		config: &container.Config{
			Image:        img,
			User:         e.opts.User,
			Env:          env,
			WorkingDir:   workDir,
			Entrypoint:   []string{"/bin/sh", "-c", bootstrap, "cronium-bootstrap", dir, backstop(spec.Timeout, e.opts.StopGrace)},
			Cmd:          cmd,
			Labels:       e.labels(spec),
			AttachStdin:  true,
			AttachStdout: true,
			AttachStderr: true,
			OpenStdin:    true,
			StdinOnce:    true,
		},
		host:  e.hostConfig(spec.Resources),
		files: []file{{name: script, data: []byte(spec.Script.Content)}, {name: "input.json", data: spec.InputJSON()}},
		relay: helpers.Relay,
	}
	for _, f := range helpers.Files {
		p.files = append(p.files, file{name: f.Name, data: f.Data, mode: int64(f.Mode.Perm())})
	}
	e.warnClamped(spec)
	return p, nil
}

// warnClamped says when a job asks for more than a maximum it gets cut to
// (hostConfig): the job runs, with less than it asked for.
func (e *Executor) warnClamped(spec executors.Spec) {
	o, r := e.opts, spec.Resources
	var over []any
	if r.MemoryBytes > o.MaxMemory {
		over = append(over, "memory_bytes", r.MemoryBytes, "max_memory_bytes", o.MaxMemory)
	}
	if r.CPUs > o.MaxCPUs {
		over = append(over, "cpus", r.CPUs, "max_cpus", o.MaxCPUs)
	}
	if r.Pids > o.MaxPids {
		over = append(over, "pids", r.Pids, "max_pids", o.MaxPids)
	}
	if r.DiskBytes > o.TmpfsSize {
		over = append(over, "disk_bytes", r.DiskBytes, "max_disk_bytes", o.TmpfsSize)
	}
	if len(over) > 0 {
		e.opts.Logger.Warn("job asks for more resources than allowed; clamped to the maxima",
			append([]any{"job_id", spec.JobID, "execution_id", spec.ExecutionID}, over...)...)
	}
}

func (e *Executor) labels(spec executors.Spec) map[string]string {
	return map[string]string{
		LabelManaged:      "true",
		LabelOrchestrator: e.opts.OrchestratorID,
		LabelJob:          spec.JobID,
		LabelExecution:    spec.ExecutionID,
	}
}

// hostConfig holds the security settings and the limits. Init puts
// docker-init at PID 1: the kernel drops SIGTERM sent to a PID 1 that has no
// handler, so without it a script would only ever see SIGKILL.
func (e *Executor) hostConfig(r executors.Resources) *container.HostConfig {
	o := e.opts
	memory := clamp(r.MemoryBytes, o.DefaultMemory, o.MaxMemory, minMemory)
	pids := clamp(r.Pids, o.DefaultPids, o.MaxPids, minPids)
	cpus := clamp(r.CPUs, o.DefaultCPUs, o.MaxCPUs, minCPUs)
	disk := clamp(r.DiskBytes, o.TmpfsSize, o.TmpfsSize, minDisk)
	tmpfs := fmt.Sprintf("rw,exec,nosuid,nodev,size=%d,mode=1777", disk)
	init := true
	return &container.HostConfig{
		// The local driver stores output byte for byte (json-file turns
		// invalid UTF-8 into U+FFFD), so a resumed Run replays exactly what
		// an attached one saw. Its rotation bounds disk use; output beyond
		// what it keeps can still be streamed, but not replayed.
		LogConfig:      container.LogConfig{Type: "local", Config: map[string]string{"max-size": "64m", "max-file": "4"}},
		NetworkMode:    container.NetworkMode(e.opts.NetworkMode),
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		ReadonlyRootfs: e.opts.ReadOnlyRoot,
		Tmpfs:          map[string]string{workDir: tmpfs, "/tmp": tmpfs},
		Init:           &init,
		Resources: container.Resources{
			Memory:     memory,
			MemorySwap: memory, // no swap beyond the memory limit
			NanoCPUs:   int64(math.Round(cpus * 1e9)),
			PidsLimit:  &pids,
		},
	}
}

// clamp returns req, or def when req is not positive, bounded by hi and
// then by lo (lo wins over a lower hi).
func clamp[T int64 | float64](req, def, hi, lo T) T {
	v := req
	if v <= 0 {
		v = def
	}
	return max(min(v, hi), lo)
}

// environment is the script's environment. Values never appear in errors
// or logs, only names and sizes.
func (e *Executor) environment(spec executors.Spec, helpers []executors.EnvVar) ([]string, error) {
	vars := spec.Environment()
	vars = slices.DeleteFunc(vars, func(v executors.EnvVar) bool {
		return slices.ContainsFunc(helpers, func(h executors.EnvVar) bool { return h.Name == v.Name })
	})
	vars = append(vars, helpers...)
	set := make(map[string]bool, len(vars))
	for _, v := range vars {
		set[v.Name] = true
	}
	defaults := []executors.EnvVar{{Name: "HOME", Value: workDir}}
	if spec.Script.Language == executors.Python {
		// Without it Python buffers a pipe and output arrives at exit.
		defaults = append(defaults, executors.EnvVar{Name: "PYTHONUNBUFFERED", Value: "1"})
	}
	for _, d := range defaults {
		if !set[d.Name] {
			vars = append(vars, d)
		}
	}
	fixed := []executors.EnvVar{
		{Name: EnvInputFile, Value: inputFile},
		// docker-init forwards signals to the script's whole process group,
		// so SIGTERM also reaches the commands a shell script is waiting on.
		{Name: "TINI_KILL_PROCESS_GROUP", Value: "1"},
	}
	vars = slices.DeleteFunc(vars, func(v executors.EnvVar) bool {
		return slices.ContainsFunc(fixed, func(f executors.EnvVar) bool { return f.Name == v.Name })
	})
	return e.envStrings(spec, append(vars, fixed...))
}

// envStrings checks vars against what Docker and the kernel accept.
func (e *Executor) envStrings(spec executors.Spec, vars []executors.EnvVar) ([]string, error) {
	out := make([]string, 0, len(vars))
	total := 0
	for _, v := range vars {
		switch {
		case v.Name == "" || strings.ContainsAny(v.Name, "=\x00"):
			return nil, fmt.Errorf("%w: invalid environment variable name %q (empty, or with '=' or a NUL byte)",
				executors.ErrInvalidSpec, v.Name)
		case strings.ContainsRune(v.Value, 0):
			return nil, fmt.Errorf("%w: environment variable %s contains a NUL byte, which no process environment can hold",
				executors.ErrInvalidSpec, v.Name)
		}
		kv := v.Name + "=" + v.Value
		if len(kv) > maxEnvString && v.Name == executors.EnvInputData {
			// The same JSON is in the input file; exec would fail with it.
			e.opts.Logger.Warn("inputData is too large for the environment; scripts get it from the input file only",
				"execution_id", spec.ExecutionID, "bytes", len(v.Value), "file_env", EnvInputFile)
			continue
		}
		if len(kv) > maxEnvString {
			return nil, fmt.Errorf("%w: environment variable %s is %d bytes, the kernel allows %d",
				executors.ErrInvalidSpec, v.Name, len(kv), maxEnvString)
		}
		total += len(kv) + 1
		out = append(out, kv)
	}
	if total > maxEnvTotal {
		return nil, fmt.Errorf("%w: the environment is %d bytes, more than %d", executors.ErrInvalidSpec, total, maxEnvTotal)
	}
	return out, nil
}

// containerName is a valid, deterministic Docker name for the execution, so
// that creating it twice fails instead of running the script twice. Ids that
// sanitising changes get a hash suffix so that two ids never share a name.
func containerName(executionID string) string {
	const maxID = 100
	clean := strings.Map(func(r rune) rune {
		if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.-", r)) {
			return r
		}
		return '-'
	}, executionID)
	if clean == executionID && len(clean) <= maxID {
		return "cronium-" + clean
	}
	sum := sha256.Sum256([]byte(executionID))
	if len(clean) > maxID {
		clean = clean[:maxID]
	}
	return "cronium-" + clean + "-" + hex.EncodeToString(sum[:6])
}

// scriptDir is the directory the script starts in: Script.WorkDir, which
// must lie in the /work tmpfs (relative paths are taken from /work), since
// everything else may be read-only.
func scriptDir(dir string) (string, error) {
	if dir == "" {
		return workDir, nil
	}
	if !path.IsAbs(dir) {
		dir = workDir + "/" + dir
	}
	dir = path.Clean(dir)
	if dir != workDir && !strings.HasPrefix(dir, workDir+"/") {
		return "", fmt.Errorf("%w: working directory %q is not under %s", executors.ErrInvalidSpec, dir, workDir)
	}
	return dir, nil
}

// createContainer creates the container, pulling its image first when the
// pull policy says so. A name already in use is reported as errNameInUse.
func (x *execution) createContainer(ctx context.Context) error {
	e, p := x.e, x.plan
	if e.opts.PullPolicy == config.PullAlways {
		if err := e.pull(ctx, p.config.Image); err != nil {
			return err
		}
	}
	id, err := e.create(ctx, p)
	if cerrdefs.IsNotFound(err) {
		// Either the image is missing or something else the config names
		// (a network): only the first is fixed by a pull.
		absent, ierr := e.imageAbsent(ctx, p.config.Image)
		if ierr != nil {
			return ierr
		}
		if !absent {
			return fmt.Errorf("create container: %w", err)
		}
		if err := e.obtain(ctx, p.config.Image); err != nil {
			return err
		}
		id, err = e.create(ctx, p)
	}
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	x.id = id
	return nil
}

func (e *Executor) create(ctx context.Context, p *plan) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.APITimeout)
	defer cancel()
	resp, err := e.api.ContainerCreate(ctx, p.config, p.host, nil, nil, p.name)
	if cerrdefs.IsConflict(err) {
		return "", errNameInUse
	}
	if err != nil {
		return "", err
	}
	return resp.ID, nil
}
