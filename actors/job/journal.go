package job

import (
	"encoding/json"
	"fmt"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/helpers"
	"github.com/cronium/orchestrator/journal"
	"github.com/cronium/orchestrator/output"
)

// Journal keeps what recovery needs across a restart of the process (see
// package journal). Save returns once the entry is durable.
type Journal interface {
	Save(e journal.Entry) error
	Remove(jobID string) error
	// SaveHelpers keeps what the job's runtime helpers must not lose.
	SaveHelpers(jobID string, data []byte) error
}

// noJournal keeps nothing: jobs are not recovered after a restart.
type noJournal struct{}

func (noJournal) Save(journal.Entry) error { return nil }
func (noJournal) Remove(string) error      { return nil }

func (noJournal) SaveHelpers(string, []byte) error { return nil }

// NoJournal is a Journal that keeps nothing.
var NoJournal Journal = noJournal{}

// Restore rebuilds a Run from its journal entry, as a restarted process
// finds it. A Running job resumes its execution (the executor finds the
// container or remote run by the execution id and replays its output from
// the start, so the output log ends up whole); a Completing job sends the
// completion it owed. Claimed entries are not restored: the job never
// started, and the caller releases it.
func Restore(e journal.Entry, out *output.Log, kept []byte) (*Run, error) {
	var j backend.Job
	if err := json.Unmarshal(e.Job, &j); err != nil {
		return nil, fmt.Errorf("journal entry: job: %w", err)
	}
	if j.ID != e.JobID {
		return nil, fmt.Errorf("journal entry: job id %q, want %q", j.ID, e.JobID)
	}
	r := NewRun(j, e.ClaimedAt, e.ExecutionID, out)
	// What the runtime helpers kept: the credential the running script
	// holds, what it set. Unreadable, the script's next calls are refused
	// and what it set is lost; the job itself is not.
	if len(kept) > 0 && json.Unmarshal(kept, &r.helpersKept) != nil {
		r.helpersKept = helpers.Saved{}
	}
	st := &r.st
	st.Journaled, st.StartedAt, st.Tries, st.Launched = e.Stage, e.StartedAt, max(e.Attempt, 1), e.Launched
	switch e.Stage {
	case journal.Running:
		st.Resumed = true
		st.Attempts = 1 // the next attempt resumes
	case journal.Completing:
		var c backend.Completion
		if err := json.Unmarshal(e.Completion, &c); err != nil {
			return nil, fmt.Errorf("journal entry: completion: %w", err)
		}
		r.completion = &c
		st.HaveCompletion, st.Phase = true, phaseComplete
	default:
		return nil, fmt.Errorf("journal entry: a %s job is not restored", e.Stage)
	}
	return r, nil
}

// save writes the job's entry at stage, as st has it.
func (a *Actor) save(st State, stage journal.Stage) error {
	r := a.run
	r.mu.Lock()
	j, execID, plan, completion := r.job, r.execID, r.plan, r.completion
	r.mu.Unlock()
	jobJSON, err := json.Marshal(j)
	if err != nil {
		return err
	}
	e := journal.Entry{JobID: j.ID, Stage: stage, Job: jobJSON, ClaimedAt: r.claimedAt,
		ExecutionID: execID, StartedAt: st.StartedAt, Attempt: st.Tries, Launched: st.Launched}
	if plan != nil {
		e.Executor = string(plan.Kind)
	}
	if stage == journal.Completing && completion != nil {
		// Written as it is encoded: a large output is not held again as JSON.
		c := *completion
		if e.CompletionBody, err = backend.EncodeJSON(&c, &c.Output.Stdout, &c.Output.Stderr); err != nil {
			return err
		}
	}
	return a.deps.Journal.Save(e)
}

// forget removes the job's entry once the backend has its result.
func forget(j Journal, jobID string, log interface{ Error(string, ...any) }) {
	if err := j.Remove(jobID); err != nil {
		log.Error("could not remove the job's journal entry", "job_id", jobID, "err", err)
	}
}
