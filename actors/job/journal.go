package job

import (
	"encoding/json"
	"fmt"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/journal"
	"github.com/cronium/orchestrator/output"
)

// Journal keeps what recovery needs across a restart of the process (see
// package journal). Save returns once the entry is durable.
type Journal interface {
	Save(e journal.Entry) error
	Remove(jobID string) error
}

// noJournal keeps nothing: jobs are not recovered after a restart.
type noJournal struct{}

func (noJournal) Save(journal.Entry) error { return nil }
func (noJournal) Remove(string) error      { return nil }

// NoJournal is a Journal that keeps nothing.
var NoJournal Journal = noJournal{}

// Restore rebuilds a Run from its journal entry, as a restarted process
// finds it. A Running job resumes its execution (the executor finds the
// container or remote run by the execution id and replays its output from
// the start, so the output log ends up whole); a Completing job sends the
// completion it owed. Claimed entries are not restored: the job never
// started, and the caller releases it.
func Restore(e journal.Entry, out *output.Log) (*Run, error) {
	var j backend.Job
	if err := json.Unmarshal(e.Job, &j); err != nil {
		return nil, fmt.Errorf("journal entry: job: %w", err)
	}
	if j.ID != e.JobID {
		return nil, fmt.Errorf("journal entry: job id %q, want %q", j.ID, e.JobID)
	}
	r := NewRun(j, e.ClaimedAt, e.ExecutionID, out)
	r.journaled, r.started, r.tries, r.launched = e.Stage, e.StartedAt, max(e.Attempt, 1), e.Launched
	switch e.Stage {
	case journal.Running:
		r.resumed = true
		r.attempts = 1 // the next attempt resumes
	case journal.Completing:
		var c backend.Completion
		if err := json.Unmarshal(e.Completion, &c); err != nil {
			return nil, fmt.Errorf("journal entry: completion: %w", err)
		}
		r.completion, r.phase = &c, phaseComplete
	default:
		return nil, fmt.Errorf("journal entry: a %s job is not restored", e.Stage)
	}
	return r, nil
}

// entryLocked is the Run's journal entry at stage.
func (r *Run) entryLocked(stage journal.Stage) (journal.Entry, error) {
	jobJSON, err := json.Marshal(r.job)
	if err != nil {
		return journal.Entry{}, err
	}
	e := journal.Entry{JobID: r.job.ID, Stage: stage, Job: jobJSON, ClaimedAt: r.claimedAt,
		ExecutionID: r.execID, StartedAt: r.started, Attempt: r.tries, Launched: r.launched}
	if r.plan != nil {
		e.Executor = string(r.plan.Kind)
	}
	if stage == journal.Completing && r.completion != nil {
		if e.Completion, err = json.Marshal(r.completion); err != nil {
			return journal.Entry{}, err
		}
	}
	return e, nil
}

// journalLocked records that the job reached stage, once per stage. A
// failure costs only recovery: it is logged and the job goes on.
func (a *Actor) journalLocked(stage journal.Stage) {
	if a.run.journaled != stage {
		a.saveLocked(stage)
	}
}

// saveLocked writes the job's entry at stage.
func (a *Actor) saveLocked(stage journal.Stage) {
	r := a.run
	e, err := r.entryLocked(stage)
	if err == nil {
		err = a.deps.Journal.Save(e)
	}
	if err != nil {
		a.log.Error("could not journal the job; it will not survive a restart", "stage", stage, "err", err)
		return
	}
	r.journaled = stage
}

// forget removes the job's entry once the backend has its result.
func forget(j Journal, r *Run, log interface{ Error(string, ...any) }) {
	if err := j.Remove(r.JobID()); err != nil {
		log.Error("could not remove the job's journal entry", "job_id", r.JobID(), "err", err)
	}
}
