package supervisor

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/job"
	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/actors/logactor"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/messages"
)

func (s *Supervisor) onJobsClaimed(c *actor.Context, m messages.JobsClaimed) {
	for _, j := range m.Jobs {
		s.obs.JobReceived()
		switch {
		case s.st.drain != nil:
			// A poll answered after we stopped polling: hand it back.
			s.release(j.ID, "the orchestrator is shutting down; released to run elsewhere")
			s.freeSlot()
		case s.st.runs[j.ID] != nil:
			s.log.Warn("job claimed twice; ignoring the second claim", "job_id", j.ID)
			s.freeSlot()
		default:
			s.startJob(c, j, m.ClaimedAt)
		}
	}
}

// startJob spawns the job's LogActor and JobActor around a new Run.
func (s *Supervisor) startJob(c *actor.Context, j backend.Job, claimedAt time.Time) {
	run := job.NewRun(j, claimedAt, jobspec.NewExecutionID(j.ID, s.deps.Clock.Now()), s.newOutput(j.ID))
	run.MaskOutput(s.deps.Settings.Job.Mask)
	s.teeLines(run)
	s.st.runs[j.ID] = run
	s.obs.JobsActive(len(s.st.runs))
	s.spawnLog(c, run)
	s.spawnJob(c, run)
	s.log.Info("job claimed", "job_id", j.ID, "type", j.Type)
}

// teeLines sends the job's output lines live, masked by the job's
// masker, when live lines are on and the job names its live view.
func (s *Supervisor) teeLines(run *job.Run) {
	if s.deps.LiveLines == nil {
		return
	}
	if sink := s.deps.LiveLines.ForJob(run.LogID()); sink != nil {
		run.Output().SetLineSink(sink)
	}
}

func (s *Supervisor) spawnLog(c *actor.Context, run *job.Run) {
	st := s.st.logStates[run.JobID()]
	if st == nil { // kept across LogActor respawns
		st = logactor.NewState(run.JobID(), run.Output(), run.ExecutionIDs)
		s.st.logStates[run.JobID()] = st
	}
	deps := logactor.Deps{Updater: s.deps.Backend, Clock: s.deps.Clock, Logger: s.log.With("actor", KindLog),
		Observer: s.obs, Keeper: s.deps.Keeper, Tasks: s.deps.Tasks, Settings: s.deps.Settings.Logs}
	s.spawn(c, KindLog, run.JobID(), run.JobID(), logactor.New(st, deps))
}

func (s *Supervisor) spawnJob(c *actor.Context, run *job.Run) {
	deps := job.Deps{Reporter: s.deps.Backend, Inquirer: s.deps.Backend, Executors: s.deps.Executors,
		Clock: s.deps.Clock, Logger: s.log.With("actor", KindJob), Observer: s.obs, Journal: s.deps.Journal, Tasks: s.deps.Tasks,
		Helpers: s.deps.Helpers, HelperObserver: s.obs, Settings: s.deps.Settings.Job}
	logPID := actor.NewPID(s.engine.Address(), s.childID(KindLog, run.JobID()))
	s.spawn(c, KindJob, run.JobID(), run.JobID(), job.New(run, deps, logPID, s.st.self))
}

func (s *Supervisor) onJobFinished(m messages.JobFinished) {
	run := s.st.runs[m.JobID]
	if run == nil {
		return // a replaced JobActor reported twice
	}
	delete(s.st.runs, m.JobID)
	s.st.finished[m.JobID] = s.deps.Clock.Now()
	s.obs.JobsActive(len(s.st.runs))
	s.obs.JobFinished(m.Executor, m.Outcome, m.Duration)
	s.stopChild(s.st.children[s.childID(KindJob, m.JobID)])
	s.stopChild(s.st.children[s.childID(KindLog, m.JobID)])
	delete(s.st.logStates, m.JobID)
	if _, owed := run.CompletionPending(); owed {
		s.st.pending[m.JobID] = run // retried at the next orphan check
	}
	s.log.Info("job finished", "job_id", m.JobID, "outcome", m.Outcome, "duration", m.Duration)
	s.freeSlot()
	s.checkDrained()
}

func (s *Supervisor) freeSlot() {
	if p := s.childOfKind(KindPoller); p != nil {
		kit.Send(s.engine, p.pid, messages.SlotsFreed{N: 1})
	} else {
		s.st.freedWhileDown++ // handed to the next poller instance
	}
}

// failUnreadable ends jobs whose JSON could not be decoded: they were
// claimed, so nobody else will run them.
func (s *Supervisor) failUnreadable(m messages.JobsUnreadable) {
	b, log := s.deps.Backend, s.log
	for i, id := range m.IDs {
		s.st.finished[id] = s.deps.Clock.Now()
		s.obs.JobReceived()
		s.obs.JobFinished("none", job.OutcomeError, 0)
		reason := m.Reason
		if i < len(m.Reasons) {
			reason = m.Reasons[i]
		}
		why := "the orchestrator could not read the job: " + reason
		s.deps.Tasks.Or().Go(callTimeout, "fail job", func(ctx context.Context) error {
			return b.FailJob(ctx, id, why, job.ExitCouldNotRun)
		}, func(err error) {
			if err != nil {
				log.Error("could not fail an unreadable job", "job_id", id, "err", err)
			}
		})
	}
}

// excessReleasers is how many releases of excess jobs are in flight at
// once: as many as the backend client keeps idle connections (net/http's
// default), so that none is opened for each release.
const excessReleasers = 2

// releaseExcess hands back the jobs a poll brought beyond the free slots,
// excessReleasers at a time in a single background call: a backend that
// ignores batchSize may send thousands, and must not get them all at once.
// A job that runs here, or whose completion is owed, came twice: it is not
// released (another orchestrator would run it again). Whatever the call
// cannot release in its time stays claimed until an orphan check.
func (s *Supervisor) releaseExcess(m messages.JobsExcess) {
	var ids []string
	seen := map[string]bool{}
	for _, j := range m.Jobs {
		if seen[j.ID] || s.st.runs[j.ID] != nil || s.st.pending[j.ID] != nil || s.st.recovering[j.ID] {
			continue
		}
		seen[j.ID] = true
		ids = append(ids, j.ID)
	}
	s.log.Warn("the backend answered more jobs than there were free slots; releasing the excess",
		"free_slots", m.Kept, "answered", m.Kept+len(m.Jobs), "releasing", len(ids))
	if len(ids) == 0 {
		return
	}
	for _, id := range ids {
		s.st.recovering[id] = true // the orphan check must not release them too
	}
	why := "orchestrator " + s.deps.Settings.OrchestratorID + " was handed more jobs than it asked for; released to run elsewhere"
	b, log, engine, self := s.deps.Backend, s.log, s.engine, s.st.self
	s.deps.Tasks.Or().Go(callTimeout, "release excess jobs", func(ctx context.Context) error {
		var next, released atomic.Int64
		var wg sync.WaitGroup
		for range min(excessReleasers, len(ids)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < int64(len(ids)) && ctx.Err() == nil; i = next.Add(1) - 1 {
					switch err := b.ReleaseJob(ctx, ids[i], why); {
					case err == nil:
						released.Add(1)
					case ctx.Err() == nil:
						log.Error("could not release job", "job_id", ids[i], "err", err)
					}
				}
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%d of %d excess jobs not released (the orphan check will): %w",
				int64(len(ids))-released.Load(), len(ids), err)
		}
		return nil
	}, func(err error) {
		if err != nil {
			log.Error("could not release every excess job", "err", err)
		}
		kit.Send(engine, self, excessReleased{ids: ids})
	})
}

func (s *Supervisor) release(jobID, why string) {
	b, log := s.deps.Backend, s.log
	s.deps.Tasks.Or().Go(callTimeout, "release job", func(ctx context.Context) error {
		return b.ReleaseJob(ctx, jobID, why)
	}, func(err error) {
		if err != nil {
			log.Error("could not release job", "job_id", jobID, "err", err)
		}
	})
}

func (s *Supervisor) onDrain(m messages.Drain) {
	if s.st.drain != nil {
		return
	}
	s.st.drain = &drainState{grace: m.Grace, done: m.Done}
	if p := s.childOfKind(KindPoller); p != nil {
		kit.Send(s.engine, p.pid, messages.StopPolling{})
	}
	s.log.Info("draining: no new jobs; waiting for running jobs", "running", len(s.st.runs), "grace", m.Grace)
	engine, self := s.engine, s.st.self
	s.st.drain.timer = s.deps.Clock.AfterFunc(m.Grace, func() { kit.Send(engine, self, drainDeadline{}) })
	s.checkDrained()
}

// onDrainDeadline: the grace is over. Jobs still executing are detached
// (they keep running, journaled, for the next start to re-attach to), or
// stopped and reported when the settings say so; jobs not executing yet
// are stopped either way, which ends them promptly.
func (s *Supervisor) onDrainDeadline() {
	reason := fmt.Sprintf("the orchestrator shut down before the job finished (grace period %s)", s.st.drain.grace)
	detached := 0
	for id, run := range s.st.runs {
		if s.deps.Settings.DetachOnShutdown && run.Detachable() {
			s.detachJob(id)
			detached++
			continue
		}
		s.cancelJob(messages.CancelJob{JobID: id, Reason: reason, Shutdown: true})
	}
	if detached > 0 {
		s.log.Warn("grace period over: leaving running jobs for the next start", "detached", detached)
	}
	if n := len(s.st.runs); n > 0 {
		s.log.Warn("grace period over: stopping jobs", "stopping", n)
	}
	s.checkDrained()
}

// detachJob stops a job's actors without ending the job: stopping a
// JobActor detaches its execution, which goes on running.
func (s *Supervisor) detachJob(jobID string) {
	delete(s.st.runs, jobID)
	delete(s.st.logStates, jobID)
	s.obs.JobsActive(len(s.st.runs))
	s.stopChild(s.st.children[s.childID(KindJob, jobID)])
	s.stopChild(s.st.children[s.childID(KindLog, jobID)])
}

func (s *Supervisor) checkDrained() {
	d := s.st.drain
	if d == nil || len(s.st.runs) > 0 || d.done == nil || s.jobActorsLeft() {
		return
	}
	if d.timer != nil {
		d.timer.Stop()
	}
	close(d.done)
	d.done = nil
}

// jobActorsLeft reports whether a job or log actor is still stopping.
// The drain is done only once they are gone: hollywood's parent, when it
// is stopped, poisons each child it still lists and waits for it, and a
// second pill sent to a child already stopping is never processed, so the
// wait would never end.
func (s *Supervisor) jobActorsLeft() bool {
	for _, ch := range s.st.children {
		if ch.kind == KindJob || ch.kind == KindLog {
			return true
		}
	}
	return false
}
