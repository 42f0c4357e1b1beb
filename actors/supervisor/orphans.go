package supervisor

import (
	"context"
	"time"

	"github.com/cronium/orchestrator/actors/job"
	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/messages"
	"github.com/cronium/orchestrator/output"
)

// recovered: a terminal call the supervisor made itself (an orphan, a
// pending completion) returned; ended says it reached the backend.
type recovered struct {
	jobID string
	ended bool
}

// onOrphans reconciles the jobs the backend lists as claimed or running
// under this orchestrator's id but that no JobActor here is running: a
// poll whose answer was lost, jobs of an earlier process with this id, or
// completions that could not be delivered.
func (s *Supervisor) onOrphans(m messages.OrphansFound) {
	s.forgetFinished()
	for _, row := range m.Rows {
		_, ended := s.st.finished[row.ID]
		switch {
		case s.st.runs[row.ID] != nil, s.st.recovering[row.ID], ended && s.st.pending[row.ID] == nil:
			continue
		case s.st.pending[row.ID] != nil:
			run := s.st.pending[row.ID]
			if c, ok := run.CompletionPending(); ok {
				s.st.recovering[row.ID] = true // one retry in flight at a time
				s.complete(run, c)
			}
		case row.Status == backend.StatusClaimed:
			s.release(row.ID, "orchestrator "+s.deps.Settings.OrchestratorID+
				" claimed the job but did not start it; released to run again")
		case row.Status == backend.StatusRunning:
			s.failOrphan(row)
		}
	}
}

// failOrphan ends a job an earlier process of this orchestrator was
// running: whatever is left of it is stopped, and it is reported failed
// with the reason. (Resuming such jobs is the next step of recovery.)
func (s *Supervisor) failOrphan(row backend.JobRow) {
	jobID := row.ID
	s.st.recovering[jobID] = true
	execs := orphanExecutors(s.deps.Executors, row.Type)
	engine, self, deps, log := s.engine, s.st.self, s.deps, s.log
	reason := "the orchestrator restarted while the job was running; its outcome is unknown"
	kit.Go(callTimeout, "fail orphan", func(ctx context.Context) error {
		stopped := "; what was left of it was stopped"
		for kind, ex := range execs {
			if err := ex.Abandon(ctx, executors.Spec{JobID: jobID}); err != nil {
				log.Warn("could not clean up an orphaned job", "job_id", jobID, "executor", kind, "err", err)
				stopped = "; it may still be running where it ran (" + string(kind) + ": " + err.Error() + ")"
			}
		}
		reason += stopped
		c := backend.Completion{Status: backend.StatusFailed, ExitCode: job.ExitCouldNotRun,
			Output: backend.CompletionOutput{Stderr: output.AppendNote("", reason)}, Timestamp: deps.Clock.Now()}
		return deps.Backend.CompleteJob(ctx, jobID, c)
	}, func(err error) {
		if err != nil {
			log.Error("could not fail an orphaned job; will retry", "job_id", jobID, "err", err)
		} else {
			log.Warn("failed an orphaned job", "job_id", jobID, "reason", reason)
		}
		kit.Send(engine, self, recovered{jobID: jobID, ended: err == nil})
	})
}

// finishedMemory outlives any orphan request in flight: the client gives
// up on a call long before.
const finishedMemory = 30 * time.Minute

func (s *Supervisor) forgetFinished() {
	cutoff := s.deps.Clock.Now().Add(-finishedMemory)
	for id, at := range s.st.finished {
		if at.Before(cutoff) {
			delete(s.st.finished, id)
		}
	}
}

// orphanExecutors are the executors that may hold what is left of an
// orphan: the one its job type names (container, ssh), or all of them
// when the type says nothing.
func orphanExecutors(all map[jobspec.Kind]executors.Executor, jobType string) map[jobspec.Kind]executors.Executor {
	if ex, ok := all[jobspec.Kind(jobType)]; ok {
		return map[jobspec.Kind]executors.Executor{jobspec.Kind(jobType): ex}
	}
	return all
}
