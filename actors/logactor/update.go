package logactor

import (
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/mask"
	"github.com/cronium/orchestrator/messages"
	"github.com/cronium/orchestrator/output"
)

// snapshotUpdate is a side-effect-free execution update: output so far,
// never status completed/failed nor completedAt (those would make the
// backend run the job's actions).
func snapshotUpdate(s output.Snapshot) backend.ExecutionUpdate {
	u := backend.ExecutionUpdate{Status: backend.StatusRunning, Output: &s.Stdout}
	if s.Stderr != "" {
		u.Error = &s.Stderr
	}
	return u
}

// finalUpdate is the last, still non-terminal, execution update of server
// i: exit code, output, error text and phase timings. The job's one
// terminal update follows through /complete.
//
// A server of a multi-server job gets its own exit code and output (the
// job's combined output interleaves every server's, prefixed). The
// snapshot is masked already; m masks the rest: the reason, and a
// server's own output, which the executor kept and the log never saw.
func finalUpdate(s output.Snapshot, f messages.FinalizeOutput, i int, m *mask.Masker) backend.ExecutionUpdate {
	exit, stdout, stderr, reason := f.ExitCode, s.Stdout, s.Stderr, f.Reason
	if servers := f.Result.Servers; len(servers) > 1 && i < len(servers) {
		sr := servers[i]
		stdout, stderr, reason = m.Text(sr.Stdout), m.Text(sr.Stderr), sr.Result.Reason
		if sr.Err != nil {
			reason = "could not run on this server: " + sr.Err.Error()
		}
		if sr.Result.Exited {
			exit = sr.Result.ExitCode
		}
	}
	// Error is always set, empty included: it replaces whatever an
	// earlier snapshot left there (a multi-server snapshot holds every
	// server's stderr).
	errText := output.AppendNote(stderr, m.Text(reason))
	u := backend.ExecutionUpdate{Output: &stdout, Error: &errText, ExitCode: &exit}
	applyTimings(&u, f.Result.Timings)
	if f.ScriptOutput != nil || f.Condition != nil {
		meta := map[string]any{}
		if f.ScriptOutput != nil { // masked by the job actor
			meta["scriptOutput"] = f.ScriptOutput
		}
		if f.Condition != nil {
			meta["condition"] = *f.Condition
		}
		u.Metadata = meta
	}
	return u
}

func applyTimings(u *backend.ExecutionUpdate, t executors.Timings) {
	at := func(x time.Time) *time.Time {
		if x.IsZero() {
			return nil
		}
		return &x
	}
	ms := func(from, to time.Time) *int64 {
		if from.IsZero() || to.IsZero() || to.Before(from) {
			return nil
		}
		d := to.Sub(from).Milliseconds()
		return &d
	}
	u.StartedAt = at(t.SetupStarted)
	u.SetupStartedAt, u.SetupCompletedAt = at(t.SetupStarted), at(t.SetupCompleted)
	u.ExecutionStartedAt, u.ExecutionCompletedAt = at(t.ExecStarted), at(t.ExecCompleted)
	u.CleanupStartedAt, u.CleanupCompletedAt = at(t.CleanupStarted), at(t.CleanupCompleted)
	u.SetupDuration = ms(t.SetupStarted, t.SetupCompleted)
	u.ExecutionDuration = ms(t.ExecStarted, t.ExecCompleted)
	u.CleanupDuration = ms(t.CleanupStarted, t.CleanupCompleted)
	end := t.CleanupCompleted
	if end.IsZero() {
		end = t.ExecCompleted
	}
	u.TotalDuration = ms(t.SetupStarted, end)
}
