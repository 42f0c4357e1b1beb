package supervisor

import (
	"context"
	"fmt"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/job"
	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/journal"
	"github.com/cronium/orchestrator/messages"
	"github.com/cronium/orchestrator/output"
)

// Recovery is what an earlier process of this orchestrator left in the
// journal.
type Recovery struct {
	Entries    []journal.Entry
	Unreadable []journal.Unreadable
	// Outputs are the jobs' kept output, by job id (see logactor.Keeper).
	Outputs map[string]output.Kept
	// Helpers are what the jobs' runtime helpers kept, by job id.
	Helpers map[string][]byte
}

// active counts the entries that become running jobs (and take slots).
func (r Recovery) active() int {
	n := 0
	for _, e := range r.Entries {
		if e.Stage != journal.Claimed {
			n++
		}
	}
	return n
}

// doubter is a backend that can be told a terminal call for a job may
// already have landed (the backend client): its next one asks first.
type doubter interface{ InDoubt(jobID string) }

// recoverJournal picks up the jobs of the earlier process, before the
// first poll: running jobs resume their executions, owed completions are
// sent once, jobs that never started are released, and jobs whose entry
// is unreadable are ended with that reason.
func (s *Supervisor) recoverJournal(c *actor.Context) {
	rec := s.deps.Recovery
	for _, e := range rec.Entries {
		if e.Stage == journal.Claimed {
			s.releaseRecovered(e.JobID)
			continue
		}
		out := s.newOutput(e.JobID)
		if k, ok := rec.Outputs[e.JobID]; ok {
			out.Restore(k)
		}
		run, err := job.Restore(e, out, rec.Helpers[e.JobID])
		if err != nil {
			s.failUnrecoverable(e.JobID, e.Executor, err)
			continue
		}
		// From the journaled job, credentials fetched before the restart
		// included: the same masker the earlier process had.
		run.MaskOutput(s.deps.Settings.Job.Mask)
		// A line cut by the restart is lost to the live view; the
		// snapshots still have it.
		s.teeLines(run)
		if e.Stage == journal.Completing {
			if d, ok := s.deps.Backend.(doubter); ok {
				d.InDoubt(e.JobID) // it may have landed just before the restart
			}
		}
		s.st.runs[e.JobID] = run
		s.obs.JobsActive(len(s.st.runs))
		s.spawnLog(c, run)
		s.spawnJob(c, run)
		s.log.Info("job recovered from the journal", "job_id", e.JobID, "stage", e.Stage)
	}
	for _, u := range rec.Unreadable {
		s.failUnrecoverable(u.JobID, "", u.Err)
	}
}

// releaseRecovered hands back a job the earlier process claimed but never
// started, and forgets it once the backend has it.
func (s *Supervisor) releaseRecovered(jobID string) {
	b, j, log := s.deps.Backend, s.deps.Journal, s.log
	why := "orchestrator " + s.deps.Settings.OrchestratorID + " restarted before it started the job; released to run again"
	s.deps.Tasks.Or().Go(callTimeout, "release job", func(ctx context.Context) error {
		if err := b.ReleaseJob(ctx, jobID, why); err != nil {
			return err
		}
		return j.Remove(jobID)
	}, func(err error) {
		if err != nil {
			log.Error("could not release a job of the earlier process", "job_id", jobID, "err", err)
		}
	})
}

// failUnrecoverable ends a job whose journal entry cannot be used: what
// may be left of it is removed, and it is failed with the reason. An entry
// unreadable to the point of naming no executor is cleaned up by the
// container executor only: the servers of an SSH job are not known.
func (s *Supervisor) failUnrecoverable(jobID, executor string, cause error) {
	s.st.recovering[jobID] = true
	ex := s.deps.Executors[jobspec.KindContainer]
	if executor != "" {
		ex = s.deps.Executors[jobspec.Kind(executor)]
	}
	engine, self, deps, log := s.engine, s.st.self, s.deps, s.log
	if d, ok := deps.Backend.(doubter); ok {
		d.InDoubt(jobID)
	}
	s.deps.Tasks.Or().Go(callTimeout, "fail unrecoverable job", func(ctx context.Context) error {
		reason := fmt.Sprintf("the orchestrator restarted and could not read its record of the job (%v); "+
			"whether the job finished is unknown", cause)
		if ex != nil {
			if err := ex.Abandon(ctx, executors.Spec{JobID: jobID}); err != nil {
				log.Warn("could not clean up an unrecoverable job", "job_id", jobID, "err", err)
			} else {
				reason += "; whatever was left of it was stopped"
			}
		}
		c := job.CouldNotRun("", "", reason, deps.Clock.Now())
		if err := deps.Backend.CompleteJob(ctx, jobID, c); err != nil {
			return err
		}
		return deps.Journal.Remove(jobID)
	}, func(err error) {
		if err != nil {
			log.Error("could not fail an unrecoverable job; will retry", "job_id", jobID, "err", err)
		}
		kit.Send(engine, self, recovered{jobID: jobID, ended: err == nil})
	})
}

// newOutput is a job's output log, nudging its log actor.
func (s *Supervisor) newOutput(jobID string) *output.Log {
	engine := s.engine
	logPID := actor.NewPID(engine.Address(), s.childID(KindLog, jobID))
	return output.New(s.deps.Settings.OutputMaxBytes, s.deps.Settings.RecentLines, func() {
		kit.Send(engine, logPID, messages.OutputAvailable{})
	})
}
