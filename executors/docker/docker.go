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

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
)

// Options configure an Executor. Zero values take the defaults of
// config.Default() (its docker section and jobs.stop_grace), except
// ReadOnlyRoot, which is false unless set. OptionsFromConfig maps a whole
// configuration.
type Options struct {
	// Host is the daemon address; "" uses DOCKER_HOST or the default socket.
	Host string
	// OrchestratorID is written to the cronium.orchestrator-id label.
	OrchestratorID string
	// Images maps a language to its runtime image; missing or empty
	// entries take the default.
	Images map[executors.Language]string
	// PullPolicy is config.PullNever, config.PullIfNotPresent or
	// config.PullAlways.
	PullPolicy string
	// NetworkMode is the containers' network.
	NetworkMode string
	// User runs the script, as uid:gid.
	User string
	// ReadOnlyRoot mounts the image read-only; /work and /tmp are tmpfs
	// either way.
	ReadOnlyRoot bool
	// TmpfsSize is the size of /work and /tmp and the most a job's
	// DiskBytes can ask for.
	TmpfsSize int64
	// Limits for jobs that ask for none (Default*) and the most a job may
	// ask for (Max*).
	DefaultMemory, MaxMemory int64
	DefaultCPUs, MaxCPUs     float64
	DefaultPids, MaxPids     int64
	// StopGrace is the time between SIGTERM and SIGKILL.
	StopGrace time.Duration
	// APITimeout bounds each Docker call; PullTimeout bounds an image pull.
	APITimeout, PullTimeout time.Duration
	// Observer receives metrics; nil for none.
	Observer Observer
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
}

// OptionsFromConfig maps the docker section of the configuration, and the
// job-wide stop grace, to Options. Logger and Observer are left to the
// caller.
func OptionsFromConfig(c config.Config, orchestratorID string) Options {
	d := c.Docker
	return Options{
		Host:           d.Host,
		OrchestratorID: orchestratorID,
		Images: map[executors.Language]string{
			executors.Bash: d.ImageBash, executors.Python: d.ImagePython, executors.Node: d.ImageNode},
		PullPolicy:    d.PullPolicy,
		NetworkMode:   d.NetworkMode,
		User:          d.User,
		ReadOnlyRoot:  d.ReadOnlyRoot,
		TmpfsSize:     d.TmpfsSize.Bytes(),
		DefaultMemory: d.DefaultMemory.Bytes(),
		MaxMemory:     d.MaxMemory.Bytes(),
		DefaultCPUs:   d.DefaultCPUs,
		MaxCPUs:       d.MaxCPUs,
		DefaultPids:   d.DefaultPids,
		MaxPids:       d.MaxPids,
		StopGrace:     c.Jobs.StopGrace,
		APITimeout:    d.APITimeout,
		PullTimeout:   d.PullTimeout,
	}
}

// interpreters is the argv each language's script file is appended to.
var interpreters = map[executors.Language][]string{
	executors.Bash:   {"bash"},
	executors.Python: {"python3"},
	executors.Node:   {"node"},
}

// Observer is told about every Docker API call and container, for metrics.
// Its methods are called from Run's goroutines and must be cheap.
type Observer interface {
	// APICall reports one call; op is one of create, start, attach, wait,
	// inspect, kill, remove, logs, list, pull, image_inspect, ping. For
	// wait, d is how long the container ran while it was waited on.
	APICall(op string, d time.Duration, err error)
	// ContainerStarted and ContainerRemoved come in pairs: a container is
	// reported removed only if it was reported started. A container found
	// by its execution's name in a started state (a resumed Run, Abandon
	// with an execution id) counts as one this process started, as in the
	// job actor's flow; the jobs of an earlier process are abandoned by
	// job id, which reports nothing.
	ContainerStarted()
	ContainerRemoved()
}

// Executor runs executions in Docker containers. It implements
// executors.Executor; Run may be called from several goroutines.
type Executor struct {
	opts  Options
	api   apiClient
	turns turns // one Run per execution at a time
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
	return &Executor{opts: opts, api: observed(api, opts.Observer)}
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
		log:  e.opts.Logger.With("execution_id", spec.ExecutionID, "container", p.name),
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
	if err := e.remove(ctx, info.ID); err != nil {
		return err
	}
	if info.State.Status != "created" {
		e.opts.Observer.ContainerRemoved() // see Observer
	}
	return nil
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
	d := OptionsFromConfig(config.Default(), "")
	// Empty entries keep the default, so that a config with a blank key
	// does not unset an image.
	images := d.Images
	for l, img := range o.Images {
		if img != "" {
			images[l] = img
		}
	}
	o.Images = images
	setDefault(&o.PullPolicy, d.PullPolicy)
	setDefault(&o.NetworkMode, d.NetworkMode)
	setDefault(&o.User, d.User)
	setDefault(&o.TmpfsSize, d.TmpfsSize)
	setDefault(&o.DefaultMemory, d.DefaultMemory)
	setDefault(&o.MaxMemory, d.MaxMemory)
	setDefault(&o.DefaultCPUs, d.DefaultCPUs)
	setDefault(&o.MaxCPUs, d.MaxCPUs)
	setDefault(&o.DefaultPids, d.DefaultPids)
	setDefault(&o.MaxPids, d.MaxPids)
	setDefault(&o.StopGrace, d.StopGrace)
	setDefault(&o.APITimeout, d.APITimeout)
	setDefault(&o.PullTimeout, d.PullTimeout)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	return o, o.validate()
}

// validate guards what would otherwise go wrong silently. Options usually
// come from a configuration config.Validate already checked; New also takes
// them from elsewhere (tests, tools).
func (o Options) validate() error {
	var errs []error
	switch o.PullPolicy {
	case config.PullNever, config.PullIfNotPresent, config.PullAlways:
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
