// Package docker runs script jobs (bash, Python, Node.js) in Docker
// containers, one container per execution.
//
// The lifecycle is split by step: create.go turns a Spec into a container
// configuration, attach.go starts a new container and streams the script to
// it over stdin, logs.go resumes a container an earlier Run started, wait.go
// enforces the timeout and cancellation, stop.go and cleanup.go end and
// remove containers, image.go applies the pull policy.
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/docker/docker/client"

	"github.com/cronium/orchestrator/executors"
)

// Pull policies.
const (
	PullNever        = "never"
	PullIfNotPresent = "if-not-present"
	PullAlways       = "always"
)

// Options configure an Executor. Zero values take the defaults named on
// each field.
type Options struct {
	// Host is the daemon address; "" uses DOCKER_HOST or the default socket.
	Host string
	// OrchestratorID is written to the cronium.orchestrator-id label.
	OrchestratorID string
	// Images maps a language to its runtime image; missing or empty
	// entries use cronium/runtime-<language>:1.
	Images map[executors.Language]string
	// Interpreters is the argv the script file is appended to; default:
	// bash → ["bash"], python → ["python3"], node → ["node"].
	Interpreters map[executors.Language][]string
	// PullPolicy is PullNever, PullIfNotPresent (default) or PullAlways.
	PullPolicy string
	// NetworkMode is the containers' network; default "bridge".
	NetworkMode string
	// User runs the script; default "65534:65534" (nobody).
	User string
	// ReadOnlyRoot mounts the image read-only; /work and /tmp are tmpfs
	// either way.
	ReadOnlyRoot bool
	// TmpfsSize is the size of /work and /tmp and the most a job's
	// DiskBytes can ask for; default 256 MiB.
	TmpfsSize int64
	// Limits for jobs that ask for none (Default*) and the most a job may
	// ask for (Max*; 0 means the default is also the maximum). Defaults:
	// 512 MiB, 1 CPU, 256 processes.
	DefaultMemory, MaxMemory int64
	DefaultCPUs, MaxCPUs     float64
	DefaultPids, MaxPids     int64
	// StopGrace is the time between SIGTERM and SIGKILL; default 10s.
	StopGrace time.Duration
	// APITimeout bounds each Docker call (default 30s); PullTimeout bounds
	// an image pull (default 10m).
	APITimeout, PullTimeout time.Duration
	// Observer receives metrics; nil for none.
	Observer Observer
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
}

// Observer is told about every Docker API call and container, for metrics.
// Its methods are called from Run's goroutines and must be cheap.
type Observer interface {
	// APICall reports one call; op is one of create, start, attach, wait,
	// inspect, kill, remove, logs, pull, image_inspect, ping. For wait, d
	// is how long the container ran while it was waited on.
	APICall(op string, d time.Duration, err error)
	ContainerStarted()
	ContainerRemoved()
}

// Executor runs executions in Docker containers. It implements
// executors.Executor; Run may be called from several goroutines.
type Executor struct {
	opts Options
	api  apiClient
	obs  Observer
	log  *slog.Logger
}

var _ executors.Executor = (*Executor)(nil)

// New checks opts and creates the Docker client. It starts nothing and does
// not contact the daemon; use Ping for that.
func New(opts Options) (*Executor, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	clientOpts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if opts.Host != "" {
		clientOpts = append(clientOpts, client.WithHost(opts.Host))
	}
	cli, err := client.NewClientWithOpts(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return newExecutor(opts, cli), nil
}

func newExecutor(opts Options, api apiClient) *Executor {
	obs := opts.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	return &Executor{opts: opts, api: observed(api, obs), obs: obs, log: opts.Logger}
}

// Run runs spec's script in a container, or resumes the container an earlier
// Run started, following the executors.Executor contract.
func (e *Executor) Run(ctx context.Context, spec executors.Spec, out executors.Output) (executors.Result, error) {
	p, err := e.plan(spec)
	if err != nil {
		return executors.Result{}, err
	}
	x := &execution{
		e:    e,
		spec: spec,
		plan: p,
		out:  out,
		log:  e.log.With("execution_id", spec.ExecutionID, "container", p.name),
	}
	return x.run(ctx)
}

// Abandon force-removes the execution's container (SIGKILL, no grace): it
// will not be resumed, so nothing is left to wait for. A container that is
// already gone is not an error.
func (e *Executor) Abandon(ctx context.Context, spec executors.Spec) error {
	if spec.ExecutionID == "" {
		if spec.JobID == "" {
			return fmt.Errorf("%w: no job or execution id", executors.ErrInvalidSpec)
		}
		return e.abandonJob(ctx, spec.JobID)
	}
	name := containerName(spec.ExecutionID)
	info, found, err := e.inspect(ctx, name)
	if err != nil || !found {
		return err
	}
	if err := checkOwner(info, spec.ExecutionID); err != nil {
		return err
	}
	return e.remove(ctx, info.ID)
}

// Ping checks that the daemon answers, for readiness probes.
func (e *Executor) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.APITimeout)
	defer cancel()
	if _, err := e.api.Ping(ctx); err != nil {
		return fmt.Errorf("ping docker: %w", err)
	}
	return nil
}

// Close releases the client's connections. Runs in progress fail.
func (e *Executor) Close() error {
	return e.api.Close()
}

// withDefaults fills zero fields and reports every invalid one at once.
func (o Options) withDefaults() (Options, error) {
	images := map[executors.Language]string{}
	interps := map[executors.Language][]string{
		executors.Bash:   {"bash"},
		executors.Python: {"python3"},
		executors.Node:   {"node"},
	}
	for _, l := range []executors.Language{executors.Bash, executors.Python, executors.Node} {
		images[l] = "cronium/runtime-" + string(l) + ":1"
	}
	// Empty entries keep the default, so that a config with a blank key
	// does not unset an image.
	for l, img := range o.Images {
		if img != "" {
			images[l] = img
		}
	}
	for l, argv := range o.Interpreters {
		if len(argv) > 0 {
			interps[l] = argv
		}
	}
	o.Images, o.Interpreters = images, interps
	setDefault(&o.PullPolicy, PullIfNotPresent)
	setDefault(&o.NetworkMode, "bridge")
	setDefault(&o.User, "65534:65534")
	setDefault(&o.TmpfsSize, 256<<20)
	setDefault(&o.DefaultMemory, 512<<20)
	setDefault(&o.MaxMemory, o.DefaultMemory)
	setDefault(&o.DefaultCPUs, 1)
	setDefault(&o.MaxCPUs, o.DefaultCPUs)
	setDefault(&o.DefaultPids, 256)
	setDefault(&o.MaxPids, o.DefaultPids)
	setDefault(&o.StopGrace, 10*time.Second)
	setDefault(&o.APITimeout, 30*time.Second)
	setDefault(&o.PullTimeout, 10*time.Minute)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, o.validate()
}

func (o Options) validate() error {
	var errs []error
	switch o.PullPolicy {
	case PullNever, PullIfNotPresent, PullAlways:
	default:
		errs = append(errs, fmt.Errorf("pull policy %q: want never, if-not-present or always", o.PullPolicy))
	}
	if o.MaxMemory < o.DefaultMemory {
		errs = append(errs, fmt.Errorf("max memory %d is below default memory %d", o.MaxMemory, o.DefaultMemory))
	}
	if o.MaxCPUs < o.DefaultCPUs {
		errs = append(errs, fmt.Errorf("max cpus %g is below default cpus %g", o.MaxCPUs, o.DefaultCPUs))
	}
	if o.MaxPids < o.DefaultPids {
		errs = append(errs, fmt.Errorf("max pids %d is below default pids %d", o.MaxPids, o.DefaultPids))
	}
	if o.TmpfsSize < 0 || o.StopGrace < 0 || o.APITimeout < 0 || o.PullTimeout < 0 {
		errs = append(errs, errors.New("sizes and durations must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("docker executor options: %w", err)
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

type nopObserver struct{}

func (nopObserver) APICall(string, time.Duration, error) {}
func (nopObserver) ContainerStarted()                    {}
func (nopObserver) ContainerRemoved()                    {}
