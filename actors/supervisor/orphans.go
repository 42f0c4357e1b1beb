package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/cronium/orchestrator/actors/job"
	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/messages"
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

// failOrphan ends a job the backend says this orchestrator runs but that
// neither this process nor its journal knows: the journal entry was lost
// (a state directory replaced or wiped). Whatever is left of it is
// stopped where that can be found, and it is reported failed with a reason
// in its own terms.
func (s *Supervisor) failOrphan(row backend.JobRow) {
	jobID := row.ID
	s.st.recovering[jobID] = true
	execs := orphanExecutors(s.deps.Executors, row.Type)
	engine, self, deps, log := s.engine, s.st.self, s.deps, s.log
	s.deps.Tasks.Or().Go(callTimeout, "fail orphan", func(ctx context.Context) error {
		reason := orphanReason(ctx, jobID, execs, log)
		c := job.CouldNotRun("", "", reason, deps.Clock.Now())
		err := deps.Backend.CompleteJob(ctx, jobID, c)
		if err == nil {
			log.Warn("failed an orphaned job", "job_id", jobID, "reason", reason)
		}
		return err
	}, func(err error) {
		if err != nil {
			log.Error("could not fail an orphaned job; will retry", "job_id", jobID, "err", err)
		}
		kit.Send(engine, self, recovered{jobID: jobID, ended: err == nil})
	})
}

// orphanReason stops what the executors can find of an orphan and says
// what became of it. An executor that cannot know where the job ran (SSH
// without its servers) is named only when the job was one of its own.
func orphanReason(ctx context.Context, jobID string, execs map[jobspec.Kind]executors.Executor, log *slog.Logger) string {
	reason := "the orchestrator restarted while the job was running and has no record of it " +
		"(its journal entry is missing), so how it ended is unknown"
	var unknown []string
	for kind, ex := range execs {
		err := ex.Abandon(ctx, executors.Spec{JobID: jobID})
		switch {
		case err == nil:
		case len(execs) > 1 && errors.Is(err, executors.ErrTargetUnknown):
			// Not this executor's job, most likely: say nothing of it.
		default:
			log.Warn("could not clean up an orphaned job", "job_id", jobID, "executor", kind, "err", err)
			unknown = append(unknown, string(kind)+": "+err.Error())
		}
	}
	if len(unknown) == 0 {
		return reason + "; whatever was left of it was stopped"
	}
	sort.Strings(unknown)
	return reason + "; it may still be running where it ran (" + strings.Join(unknown, "; ") + ")"
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
