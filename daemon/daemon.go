// Package daemon assembles the orchestrator from its configuration: the
// backend client, the executors, the actor engine with its supervisor, and
// the HTTP listeners. `run`, `standalone` and the end-to-end tests all
// start it the same way.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cronium/orchestrator/actors/job"
	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/actors/logactor"
	"github.com/cronium/orchestrator/actors/poller"
	"github.com/cronium/orchestrator/actors/supervisor"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/journal"
	"github.com/cronium/orchestrator/livelines"
	"github.com/cronium/orchestrator/mask"
	"github.com/cronium/orchestrator/messages"
	"github.com/cronium/orchestrator/metrics"
	"github.com/cronium/orchestrator/output"
	"github.com/cronium/orchestrator/secret"
	"github.com/cronium/orchestrator/state"
)

// Options are what the configuration does not say.
type Options struct {
	Logger  *slog.Logger
	Version string
	// Executors replaces the executors built from the configuration
	// (tests script jobs with executors/fake this way).
	Executors map[jobspec.Kind]executors.Executor
	// Clock replaces the wall clock (tests).
	Clock kit.Clock
	// AdminTimeout replaces the admin API's bound on each request to the
	// supervisor (admin.Options.Timeout; tests on a loaded machine).
	AdminTimeout time.Duration
}

// Daemon is one orchestrator process's worth of machinery.
type Daemon struct {
	cfg       config.Config
	id        string
	log       *slog.Logger
	client    *backend.Client
	executors *executorSet
	clock     kit.Clock
	adminWait time.Duration // admin.Options.Timeout
	journal   *journal.Dir
	recovery  supervisor.Recovery

	engine     *actor.Engine
	supervisor *actor.PID
	servers    []*http.Server

	registry  *prometheus.Registry
	metrics   *metrics.Metrics
	version   string
	httpAddr  string // where the listeners really are (":0" picks a port)
	adminAddr string
	draining  atomic.Bool

	stopReconciler func()     // set by Start; stops the dangling-resource sweeps
	stopWatch      func()     // set by Start; stops the backend's reachability watch
	tasks          *kit.Tasks // backend calls and executor runs the actors started; set by Start

	live     *livelines.Sender // nil: logs.live_url is off
	stopLive func()            // set by Start; stops the live-lines sender and waits for it
}

// New builds the daemon. It reads the state directory (for the stable
// orchestrator id) but starts nothing.
func New(cfg config.Config, opts Options) (_ *Daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	dir, err := state.Open(cfg.Orchestrator.StateDir)
	if err != nil {
		return nil, err
	}
	id, previous, err := dir.OrchestratorID(cfg.Orchestrator.ID)
	if err != nil {
		return nil, err
	}
	// Every record of the daemon carries the id; Logger hands it out for
	// slog's default, which hollywood logs through.
	log = log.With("orchestrator_id", id)
	if previous != "" {
		log.Warn("orchestrator id changed; jobs claimed under the old id are not reconciled by this process",
			"previous", previous)
	}
	jobs, err := journal.Open(filepath.Join(dir.Path, "jobs"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			jobs.Close()
		}
	}()
	var rec supervisor.Recovery
	if rec.Entries, rec.Unreadable, err = jobs.Load(); err != nil {
		return nil, err
	}
	rec.Outputs, rec.Helpers = map[string]output.Kept{}, map[string][]byte{}
	for _, e := range rec.Entries {
		if k, ok := jobs.LoadOutput(e.JobID); ok {
			rec.Outputs[e.JobID] = k
		}
		if h, ok := jobs.LoadHelpers(e.JobID); ok {
			rec.Helpers[e.JobID] = h
		}
	}
	if n := len(rec.Entries) + len(rec.Unreadable); n > 0 {
		log.Info("jobs of the earlier process found in the journal", "jobs", n, "unreadable", len(rec.Unreadable))
	}
	reg := metrics.NewRegistry() // /metrics serves it
	m := metrics.New(reg)
	m.WatchMailboxes(kit.MailboxDepths)
	client, err := backend.New(backend.Options{
		BaseURL: cfg.API.URL, Token: cfg.API.Token, OrchestratorID: id,
		RequestTimeout: cfg.API.RequestTimeout, RetryMaxElapsed: cfg.API.RetryMaxElapsed,
		Observer: m,
	})
	if err != nil {
		return nil, fmt.Errorf("backend client: %w", err)
	}
	execs, err := newExecutorSet(cfg, id, log, opts.Executors, m)
	if err != nil {
		return nil, err
	}
	clock := opts.Clock
	if clock == nil {
		clock = kit.RealClock{}
	}
	var live *livelines.Sender
	if cfg.Logs.LiveURL != "" {
		if live, err = livelines.New(livelines.Options{URL: cfg.Logs.LiveURL, Observer: m, Logger: log}); err != nil {
			return nil, err
		}
	}
	return &Daemon{cfg: cfg, id: id, log: log, client: client, executors: execs, clock: clock, adminWait: opts.AdminTimeout,
		journal: jobs, recovery: rec, registry: reg, metrics: m, version: opts.Version, live: live}, nil
}

// Run starts the orchestrator and blocks until ctx is cancelled; then it
// shuts down gracefully (see Shutdown).
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return d.Shutdown()
}

// Start spawns the actor system and the HTTP listeners and returns; jobs
// start flowing. A listener that cannot bind fails Start before any job is
// claimed.
func (d *Daemon) Start(ctx context.Context) error {
	probed, err := d.probeBackend(ctx)
	if err != nil {
		return err
	}
	lns, err := d.bindListeners()
	if err != nil {
		return err
	}
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		lns.close()
		return fmt.Errorf("actor engine: %w", err)
	}
	d.engine = engine
	d.tasks = kit.NewTasks()
	d.stopLive = d.startLiveLines()
	d.supervisor = supervisor.Spawn(engine, d.supervisorDeps())
	d.serve(lns)
	d.stopReconciler = d.startReconciler(ctx)
	d.stopWatch = d.watchBackend(ctx, probed)
	d.log.Info("orchestrator started", "backend", d.cfg.API.URL, "capacity", d.cfg.Jobs.MaxConcurrent,
		"executors", d.executors.names())
	if err := d.executors.ping(ctx); err != nil {
		d.log.Warn("docker is not reachable; container jobs will fail until it is", "err", err)
	}
	return nil
}

// Shutdown drains: no new jobs, running jobs get jobs.shutdown_grace to
// finish, then the rest are detached (left running, journaled, for the
// next start) or, with jobs.on_shutdown stop, stopped and reported. It returns nil once every
// job was reported and the actors stopped.
func (d *Daemon) Shutdown() error {
	if d.stopReconciler != nil {
		d.stopReconciler()
	}
	if d.stopWatch != nil {
		d.stopWatch()
	}
	grace := d.cfg.Jobs.ShutdownGrace
	d.draining.Store(true) // /readyz says so from now on
	d.log.Info("shutting down", "grace", grace)
	done := make(chan struct{})
	d.engine.Send(d.supervisor, messages.Drain{Grace: grace, Done: done})
	// After the grace period, stopped jobs still need their stop grace and
	// their reports; past this bound we exit anyway rather than hang.
	hard := grace + d.cfg.Jobs.StopGrace + d.cfg.API.RetryMaxElapsed + 30*time.Second
	var err error
	select {
	case <-done:
	case <-time.After(hard):
		err = errors.New("jobs did not finish reporting within the shutdown bound")
		d.log.Error("shutdown bound reached with jobs still reporting", "bound", hard)
	}
	select {
	case <-d.engine.Poison(d.supervisor).Done():
	case <-time.After(10 * time.Second):
		// hollywood waits for every child of the supervisor; one stuck
		// in a stop must not keep the process from exiting.
		d.log.Error("actors did not stop within 10s; exiting anyway")
	}
	// The actors are gone; what they started (executor runs being
	// detached, the last backend calls) ends before the executors close.
	tasksCtx, cancelTasks := context.WithTimeout(context.Background(), 10*time.Second)
	if !d.tasks.Wait(tasksCtx) {
		d.log.Error("background calls did not end within 10s; cancelling them")
	}
	cancelTasks()
	d.tasks.Close()
	if d.stopLive != nil {
		d.stopLive() // after the jobs: their last lines still go out
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range d.servers {
		_ = s.Shutdown(shutdownCtx)
	}
	d.executors.close()
	// Last: a job detached above was journaled before its actor stopped.
	if cerr := d.journal.Close(); cerr != nil {
		d.log.Error("could not close the journal", "err", cerr)
	}
	d.log.Info("orchestrator stopped")
	return err
}

func (d *Daemon) supervisorDeps() supervisor.Deps {
	c := d.cfg
	return supervisor.Deps{
		Backend:   d.client,
		Executors: d.executors.byKind,
		Clock:     d.clock,
		Logger:    d.log,
		Observer:  d.metrics,
		Journal:   d.journal,
		Keeper:    d.journal,
		Recovery:  d.recovery,
		Tasks:     d.tasks,
		Helpers:   d.client,
		LiveLines: d.liveLines(),
		Settings: supervisor.Settings{
			OrchestratorID:   d.id,
			DetachOnShutdown: c.Jobs.OnShutdown == config.ShutdownDetach,
			OutputMaxBytes:   c.Jobs.OutputMaxBytes.Bytes(),
			RecentLines:      200,
			MaxRestarts:      c.Supervisor.MaxRestarts,
			RestartWindow:    c.Supervisor.RestartWindow,
			Poll: poller.Settings{Capacity: c.Jobs.MaxConcurrent, PollInterval: c.Jobs.PollInterval,
				MaxBackoff: c.Jobs.PollMaxBackoff, OrphanInterval: c.Jobs.OrphanCheckInterval,
				LongPollWait: backend.MaxLongPollWait},
			Job: job.Settings{DefaultTimeout: c.Jobs.DefaultTimeout, CancelCheckInterval: c.Jobs.CancelCheckInterval,
				BackoffInitial: c.Supervisor.BackoffInitial, BackoffMax: c.Supervisor.BackoffMax,
				FinalizeTimeout: c.API.RetryMaxElapsed + c.API.RequestTimeout, OrchestratorID: d.id,
				Mask: mask.Policy{Disabled: !c.Jobs.MaskSecrets, Names: mask.ParseNames(c.Jobs.MaskEnvNames),
					Always: []secret.Value{c.API.Token}}},
			Logs: logactor.Settings{BatchLines: c.Logs.BatchLines, BatchBytes: c.Logs.BatchBytes.Bytes(),
				BatchInterval: c.Logs.BatchInterval},
		},
	}
}

// Logger is the daemon's logger: the one it was given, with
// orchestrator_id on every record. A process makes it slog's default after
// New, so that hollywood's own records (it logs through slog.Default)
// carry the id too.
func (d *Daemon) Logger() *slog.Logger { return d.log }

// Engine and Supervisor expose the actor system (admin API, tests).
func (d *Daemon) Engine() *actor.Engine  { return d.engine }
func (d *Daemon) Supervisor() *actor.PID { return d.supervisor }

// startLiveLines runs the live-lines sender, when there is one, until the
// returned stop is called; stop waits for it (at most its one-second
// drain of the lines still queued).
func (d *Daemon) startLiveLines() (stop func()) {
	if d.live == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.live.Run(ctx)
	}()
	d.log.Info("sending output lines live", "url", d.live.Endpoint())
	return func() {
		cancel()
		<-done
	}
}

// liveLines is the supervisor's sink of live lines; nil when off.
func (d *Daemon) liveLines() supervisor.LiveLines {
	if d.live == nil {
		return nil
	}
	return d.live
}

// LiveLines is the live-lines sender (tests read its counters); nil when
// logs.live_url is off.
func (d *Daemon) LiveLines() *livelines.Sender { return d.live }
