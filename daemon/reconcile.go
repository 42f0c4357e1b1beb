package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/journal"
)

// sweep removes one kind of leftover that no job owns.
type sweep struct {
	kind   string // the metric's label: container or spool
	remove func(ctx context.Context, owners executors.Owners) (int, error)
}

// danglingObserver counts what the reconciler removed (*metrics.Metrics).
type danglingObserver interface {
	DanglingRemoved(kind string, n int)
}

// reconciler removes, every interval, what the jobs of this orchestrator
// left behind and no job owns any more: job containers and the spools of
// ended SSH jobs (see the executors' RemoveDangling). Owners come from the
// journal, which names every execution a job of this orchestrator, live
// or awaiting recovery, may still need.
type reconciler struct {
	interval time.Duration
	sweeps   []sweep
	owners   executors.Owners
	clock    kit.Clock
	obs      danglingObserver
	log      *slog.Logger
}

// startReconciler starts the reconciler in a goroutine the Daemon owns and
// returns stop, which cancels it and waits for it to return; a pass under
// way ends at its next Docker call or remote step. The loop runs until
// stop, whatever becomes of ctx. With docker.dangling_interval 0, or no
// executor to sweep (executors replaced in tests), it starts nothing.
func (d *Daemon) startReconciler(ctx context.Context) (stop func()) {
	r := d.reconciler()
	if r == nil {
		return func() {}
	}
	return r.start(context.WithoutCancel(ctx))
}

// reconciler is the daemon's reconciler, or nil when it has none to run.
func (d *Daemon) reconciler() *reconciler {
	interval := d.cfg.Docker.DanglingInterval
	if interval <= 0 || d.executors == nil {
		return nil
	}
	var sweeps []sweep
	if dx := d.executors.docker; dx != nil {
		grace := d.cfg.Docker.DanglingGrace
		sweeps = append(sweeps, sweep{kind: "container",
			remove: func(ctx context.Context, owners executors.Owners) (int, error) {
				return dx.RemoveDangling(ctx, grace, owners)
			}})
	}
	if sx := d.executors.ssh; sx != nil {
		sweeps = append(sweeps, sweep{kind: "spool", remove: sx.RemoveDangling})
	}
	if len(sweeps) == 0 {
		return nil
	}
	return &reconciler{interval: interval, sweeps: sweeps, owners: journalOwners(d.journal), clock: d.clock,
		obs: d.metrics, log: d.log.With("component", "reconciler")}
}

// start runs the loop in a goroutine until stop is called; stop waits for
// it. Call stop once.
func (r *reconciler) start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// run makes a pass every interval until ctx ends. The first pass waits an
// interval too, as Nomad's does: the process has just started, and is
// recovering the earlier one's jobs.
func (r *reconciler) run(ctx context.Context) {
	for {
		due := make(chan struct{})
		t := r.clock.AfterFunc(r.interval, func() { close(due) })
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-due:
		}
		r.pass(ctx)
	}
}

// pass runs every sweep once. A failure is logged and left to the next
// pass.
func (r *reconciler) pass(ctx context.Context) {
	for _, s := range r.sweeps {
		n, err := s.remove(ctx, r.owners)
		r.obs.DanglingRemoved(s.kind, n)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.log.Warn("could not remove every leftover no job owns; the next pass tries again",
				"kind", s.kind, "removed", n, "err", err)
		case n > 0:
			r.log.Info("removed leftovers no job owns", "kind", s.kind, "removed", n)
		}
	}
}

// journalOwners reads the owners from the journal: every execution an
// entry names. An entry that cannot be read may own anything, so while
// there is one nothing is removed; the supervisor ends its job and removes
// the entry.
func journalOwners(j *journal.Dir) executors.Owners {
	return func() (func(string) bool, error) {
		entries, bad, err := j.Load()
		if err != nil {
			return nil, err
		}
		if len(bad) > 0 {
			return nil, fmt.Errorf("%d unreadable journal entries (job %s: %v) may own anything",
				len(bad), bad[0].JobID, bad[0].Err)
		}
		owned := make(map[string]bool, len(entries))
		for _, e := range entries {
			owned[e.ExecutionID] = true
		}
		return func(executionID string) bool { return owned[executionID] }, nil
	}
}
