package job

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/journal"
)

var (
	t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	m  = machine{backoffInitial: time.Second, backoffMax: 8 * time.Second}

	exitedOK   = executors.Result{Exited: true}
	exitedOne  = executors.Result{Exited: true, ExitCode: 1}
	errDropped = executors.Retryable(errors.New("connection lost"))
	errBadSpec = fmt.Errorf("%w: no image", executors.ErrInvalidSpec)
	errDown    = errors.New("backend unreachable")
)

// names lists the effects' types, the short way.
func names(effects []effect) []string {
	out := make([]string, len(effects))
	for i, e := range effects {
		out[i] = reflect.TypeOf(e).Name()
	}
	return out
}

// TestNext pins each decision of the lifecycle: from a state, one event,
// the state that follows and what the actor is asked to do.
func TestNext(t *testing.T) {
	executing := State{Phase: phaseExecute, Planned: true, Executing: true, Attempts: 1, Tries: 1,
		Journaled: journal.Running, StartedAt: t0, Instances: 1}
	finalizing := State{Phase: phaseFinalize, Planned: true, Finalizing: true, Tries: 1, Attempts: 1,
		Outcome: &Outcome{Result: exitedOK}, HaveCompletion: true, Journaled: journal.Completing}
	tests := []struct {
		name  string
		from  State
		ev    any
		check func(t *testing.T, s State)
		want  []string
	}{
		{"a new job is planned", State{Tries: 1}, evBegin{},
			func(t *testing.T, s State) { eq(t, s.Instances, 1); eq(t, s.Restarts, 0) },
			[]string{"effPlan"}},
		{"a replacement instance waits for the attempt in flight", executing, evBegin{},
			func(t *testing.T, s State) { eq(t, s.Restarts, 1); eq(t, s.ResumeAt, t0.Add(time.Second)) },
			nil},
		{"server credentials are fetched first", State{Tries: 1}, evPlanned{NeedsCreds: true},
			func(t *testing.T, s State) { eq(t, s.Step, stepCredentials); eq(t, s.StepSeq, 1) },
			[]string{"effFetchCredentials"}},
		{"credentials fetched: plan again", State{Step: stepCredentials, StepSeq: 1}, evStepDone{Seq: 1},
			func(t *testing.T, s State) { eq(t, s.Phase, phasePlan) },
			[]string{"effPlan"}},
		{"a job that cannot be planned is completed at once, with no execution record",
			State{Tries: 1}, evPlanned{Err: errBadSpec},
			func(t *testing.T, s State) { eq(t, s.Phase, phaseComplete); eq(t, s.Step, stepComplete) },
			[]string{"effBuildCompletion", "effComplete"}},
		{"planned: journaled as claimed, then registered", State{Tries: 1}, evPlanned{Servers: 1},
			func(t *testing.T, s State) { eq(t, s.Phase, phaseRegister); eq(t, s.Step, stepRegister) },
			[]string{"effJournal", "effRegister"}},
		{"restored from the journal: resumes its execution, output kept",
			State{Tries: 1, Resumed: true, Attempts: 1, Journaled: journal.Running, StartedAt: t0},
			evPlanned{Servers: 1},
			func(t *testing.T, s State) {
				eq(t, s.Phase, phaseExecute)
				eq(t, s.Attempts, 2)
				eq(t, s.Executing, true)
			},
			[]string{"effStartAttempt", "effCheckCancelLater"}},
		{"an answer already taken is ignored", State{Phase: phaseRegister, Step: stepRegister, StepSeq: 3},
			evStepDone{Seq: 2},
			func(t *testing.T, s State) { eq(t, s.Step, stepRegister) },
			nil},
		{"registered: the backend is told the job runs", State{Phase: phaseRegister, Step: stepRegister, StepSeq: 1, Planned: true},
			evStepDone{Seq: 1},
			func(t *testing.T, s State) { eq(t, s.Phase, phaseStart); eq(t, s.StepSeq, 2) },
			[]string{"effMarkRunning"}},
		{"failed to register: could not run", State{Phase: phaseRegister, Step: stepRegister, StepSeq: 1, Planned: true, Tries: 1},
			evStepDone{Seq: 1, Err: errDown},
			func(t *testing.T, s State) {
				eq(t, s.Phase, phaseFinalize)
				eq(t, s.verdict().exitCode, ExitCouldNotRun)
			},
			[]string{"effLogStepFailed", "effFinalizeOutput", "effBuildCompletion", "effJournal"}},
		{"marked running: journaled as running before anything starts",
			State{Phase: phaseStart, Step: stepMarkRunning, StepSeq: 2, Planned: true, Journaled: journal.Claimed},
			evStepDone{Seq: 2},
			func(t *testing.T, s State) {
				eq(t, s.Phase, phaseExecute)
				eq(t, s.StartedAt, t0)
				eq(t, s.Executing, false)
			},
			[]string{"effObserveRunning", "effJournal"}},
		{"journaled as running: the first attempt starts",
			State{Phase: phaseExecute, Planned: true, Journaled: journal.Claimed, StartedAt: t0},
			evJournaled{Stage: journal.Running},
			func(t *testing.T, s State) { eq(t, s.Attempts, 1); eq(t, s.Executing, true) },
			[]string{"effStartAttempt", "effCheckCancelLater"}},
		{"not journaled as running: the job does not start (a restart could run it twice)",
			State{Phase: phaseExecute, Planned: true, Journaled: journal.Claimed, StartedAt: t0, Tries: 1},
			evJournaled{Stage: journal.Running, Err: errors.New("disk full")},
			func(t *testing.T, s State) {
				eq(t, s.Attempts, 0)
				eq(t, s.Phase, phaseFinalize)
				eq(t, s.verdict().status, backend.StatusFailed)
			},
			[]string{"effLogStepFailed", "effFinalizeOutput", "effBuildCompletion", "effJournal"}},
		{"the executor started it: journaled so that a restart never runs it again", executing, evLaunched{},
			func(t *testing.T, s State) { eq(t, s.Launched, true) },
			[]string{"effJournal"}},
		{"launched twice: journaled once", withLaunched(executing), evLaunched{}, nil, nil},
		{"the attempt ended: the output is finalized with the completion built and journaled", executing,
			evAttemptEnded{N: 1, Result: exitedOK},
			func(t *testing.T, s State) { eq(t, s.Phase, phaseFinalize); eq(t, s.HaveCompletion, true) },
			[]string{"effFinalizeOutput", "effBuildCompletion", "effJournal"}},
		{"an earlier attempt's end is ignored", executing, evAttemptEnded{N: 0, Result: exitedOK},
			func(t *testing.T, s State) { eq(t, s.Executing, true) }, nil},
		{"interrupted: the supervisor is asked, nothing else moves", executing,
			evAttemptEnded{N: 1, Err: errDropped},
			func(t *testing.T, s State) { eq(t, s.Interrupted, true); eq(t, s.Outcome == nil, true) },
			[]string{"effInterrupted"}},
		{"resumed by the supervisor after a backoff", withInterrupted(executing), evResume{},
			func(t *testing.T, s State) { eq(t, s.Restarts, 1); eq(t, s.Interrupted, false) },
			[]string{"effArmResume"}},
		{"the backoff passed: the same execution is resumed",
			State{Phase: phaseExecute, Planned: true, Attempts: 1, Journaled: journal.Running, ResumeAt: t0},
			evAdvance{},
			func(t *testing.T, s State) { eq(t, s.Attempts, 2) },
			[]string{"effStartAttempt", "effCheckCancelLater"}},
		{"detached (its instance is gone): resumed at once",
			executing, evAttemptEnded{N: 1, Err: executors.ErrDetached},
			func(t *testing.T, s State) { eq(t, s.Attempts, 2); eq(t, s.Executing, true) },
			[]string{"effStartAttempt", "effCheckCancelLater"}},
		{"a job that cannot run fails with the reason", executing, evAttemptEnded{N: 1, Err: errBadSpec},
			func(t *testing.T, s State) {
				eq(t, s.Phase, phaseFinalize)
				eq(t, s.verdict().reason, "could not run the job: "+errBadSpec.Error())
			},
			[]string{"effFinalizeOutput", "effBuildCompletion", "effJournal"}},
		{"cancelled while running: the attempt is stopped", executing, evCancel{Reason: "by alice"},
			func(t *testing.T, s State) { eq(t, s.Cancel.Reason, "by alice") },
			[]string{"effStopAttempt"}},
		{"cancelled before anything started: cancelled, no attempt",
			State{Phase: phaseExecute, Planned: true, Journaled: journal.Running, ResumeAt: t0.Add(time.Hour), Tries: 1},
			evCancel{Reason: "by bob"},
			func(t *testing.T, s State) { eq(t, s.Attempts, 0); eq(t, s.verdict().status, backend.StatusCancelled) },
			[]string{"effFinalizeOutput", "effBuildCompletion", "effJournal"}},
		{"cancelled while interrupted: resumed with the cancel, which stops it where it runs",
			withInterrupted(executing), evCancel{Reason: "by carol"},
			func(t *testing.T, s State) { eq(t, s.Interrupted, false); eq(t, s.Attempts, 2) },
			[]string{"effStartAttempt", "effCheckCancelLater"}},
		{"a cancel after the result is ignored", finalizing, evCancel{Reason: "late"},
			func(t *testing.T, s State) { eq(t, s.Cancel == nil, true) }, nil},
		{"the UI cancelled it", executing, evCancelChecked{Cancelled: true},
			func(t *testing.T, s State) { eq(t, s.Cancel.Reason, "cancelled in Cronium") },
			[]string{"effStopAttempt"}},
		{"not cancelled: ask again later", executing, evCancelChecked{}, nil, []string{"effCheckCancelLater"}},
		{"given up while running: the attempt is stopped", executing, evGiveUp{Reason: "budget"},
			func(t *testing.T, s State) { eq(t, s.GiveUp, "budget") },
			[]string{"effStopAttempt"}},
		{"given up: what is left of the execution is abandoned",
			State{Phase: phaseExecute, Planned: true, Attempts: 1, GiveUp: "budget", Journaled: journal.Running},
			evAdvance{},
			func(t *testing.T, s State) { eq(t, s.Step, stepAbandon) },
			[]string{"effAbandon"}},
		{"abandoned: failed with the give-up reason",
			State{Phase: phaseExecute, Planned: true, Attempts: 1, GiveUp: "budget", Step: stepAbandon, StepSeq: 4, Tries: 1},
			evStepDone{Seq: 4},
			func(t *testing.T, s State) {
				eq(t, s.verdict().reason, "budget")
				eq(t, s.verdict().exitCode, ExitCouldNotRun)
			},
			[]string{"effFinalizeOutput", "effBuildCompletion", "effJournal"}},
		{"given up while interrupted: abandoned at once", withInterrupted(executing), evGiveUp{Reason: "budget"},
			func(t *testing.T, s State) { eq(t, s.Step, stepAbandon) },
			[]string{"effAbandon"}},
		{"given up during a step before it ran: ends once the step answers",
			State{Phase: phaseRegister, Step: stepRegister, StepSeq: 1, Planned: true},
			evGiveUp{Reason: "budget"},
			func(t *testing.T, s State) { eq(t, s.Outcome != nil, true); eq(t, s.Step, stepRegister) },
			nil},
		{"a give-up after the result is ignored", finalizing, evGiveUp{Reason: "late"},
			func(t *testing.T, s State) { eq(t, s.GiveUp, "") }, nil},
		{"a failure the policy retries: finalized, no completion",
			withPolicy(executing, &backend.RetryPolicy{MaxAttempts: 3, BackoffType: "fixed", BackoffDelay: 2}),
			evAttemptEnded{N: 1, Result: exitedOne},
			func(t *testing.T, s State) {
				eq(t, s.Retrying, true)
				eq(t, s.RetryIn, 2*time.Second)
				eq(t, s.HaveCompletion, false)
			},
			[]string{"effFinalizeOutput"}},
		{"finalized: the one /complete", finalizing, evFinalized{},
			func(t *testing.T, s State) { eq(t, s.Phase, phaseComplete); eq(t, s.Step, stepComplete) },
			[]string{"effComplete"}},
		{"finalized for a retry: the log starts afresh", withRetrying(finalizing), evFinalized{},
			func(t *testing.T, s State) { eq(t, s.AwaitingReset, true); eq(t, s.Phase, phaseFinalize) },
			[]string{"effRetried", "effResetOutput"}},
		{"a second confirmation is ignored", withRetrying(finalizing), evFinalized{},
			func(t *testing.T, s State) { eq(t, s.AwaitingReset, true) }, []string{"effRetried", "effResetOutput"}},
		{"the log is reset: a new execution", State{Phase: phaseFinalize, AwaitingReset: true, Tries: 1},
			evOutputReset{},
			func(t *testing.T, s State) { eq(t, s.Tries, 2) },
			[]string{"effNewExecution"}},
		{"the new execution is registered; it starts after the delay",
			State{Phase: phaseFinalize, Tries: 2, Attempts: 1, RetryIn: 2 * time.Second, Planned: true,
				Outcome: &Outcome{Result: exitedOne}, Journaled: journal.Running, StartedAt: t0},
			evNewExecution{},
			func(t *testing.T, s State) {
				eq(t, s.Phase, phaseRegister)
				eq(t, s.Attempts, 0)
				eq(t, s.NotBefore, t0.Add(2*time.Second))
				eq(t, s.Journaled, journal.Claimed)
			},
			[]string{"effRegister"}},
		{"a retry is not marked running again (the backend would reset startedAt)",
			State{Phase: phaseRegister, Step: stepRegister, StepSeq: 5, Planned: true, StartedAt: t0, NotBefore: t0.Add(time.Second)},
			evStepDone{Seq: 5},
			func(t *testing.T, s State) { eq(t, s.Phase, phaseExecute) },
			[]string{"effArmResume"}},
		{"completed: the supervisor is told",
			State{Phase: phaseComplete, Step: stepComplete, StepSeq: 6, HaveCompletion: true, Outcome: &Outcome{Result: exitedOK}},
			evStepDone{Seq: 6},
			func(t *testing.T, s State) { eq(t, s.Completed, true); eq(t, s.Phase, phaseDone) },
			[]string{"effFinished"}},
		{"/complete failed: left for the supervisor to retry",
			State{Phase: phaseComplete, Step: stepComplete, StepSeq: 6, HaveCompletion: true},
			evStepDone{Seq: 6, Err: errDown},
			func(t *testing.T, s State) { eq(t, s.CompleteFailed, true); eq(t, s.Completed, false) },
			[]string{"effLogStepFailed", "effFinished"}},
		{"a disabled executor: failed saying so",
			State{Phase: phaseExecute, Planned: true, Journaled: journal.Claimed, StartedAt: t0, Tries: 1,
				Disabled: errors.New("ssh jobs are disabled on this orchestrator")},
			evAdvance{},
			func(t *testing.T, s State) {
				eq(t, s.verdict().reason, "could not run the job: ssh jobs are disabled on this orchestrator")
			},
			[]string{"effFinalizeOutput", "effBuildCompletion", "effJournal"}},
		{"restored owing its completion: sends it",
			State{Phase: phaseComplete, HaveCompletion: true, Journaled: journal.Completing, Tries: 1}, evBegin{},
			func(t *testing.T, s State) { eq(t, s.Step, stepComplete) },
			[]string{"effComplete"}},
		{"a replacement during finalize sends the final update again", finalizing, evBegin{},
			func(t *testing.T, s State) { eq(t, s.Finalizing, true) },
			[]string{"effFinalizeOutput"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, effects := m.next(tt.from, tt.ev, t0)
			if got := names(effects); !slices.Equal(got, tt.want) {
				t.Errorf("effects %v, want %v", got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func eq[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func withLaunched(s State) State                       { s.Launched = true; return s }
func withInterrupted(s State) State                    { s.Executing, s.Interrupted = false, true; return s }
func withRetrying(s State) State                       { s.Retrying, s.HaveCompletion = true, false; return s }
func withPolicy(s State, p *backend.RetryPolicy) State { s.Policy = p; return s }

// TestStartAttemptArguments: what each attempt is asked to do.
func TestStartAttemptArguments(t *testing.T) {
	s := State{Phase: phaseExecute, Planned: true, Journaled: journal.Running, Resumed: true, Attempts: 1, Servers: 3}
	_, effects := m.next(s, evAdvance{}, t0)
	start := effects[0].(effStartAttempt)
	if start != (effStartAttempt{N: 2, Resume: true, ResetOutput: true}) {
		t.Errorf("a multi-server job restored from the journal: %+v, want its output replayed from the start", start)
	}
	s.Cancel = &CancelRequest{Reason: "stop"}
	s.Attempts = 2
	_, effects = m.next(s, evAdvance{}, t0)
	if start := effects[0].(effStartAttempt); start.Cancel == nil || start.ResetOutput || !start.Resume {
		t.Errorf("a cancelled job's third attempt: %+v, want resumed with the cancel, output kept", start)
	}
}

// TestBackoff doubles per restart up to the maximum.
func TestBackoff(t *testing.T) {
	for restarts, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second,
		4: 8 * time.Second, 9: 8 * time.Second} {
		if got := backoff(time.Second, 8*time.Second, restarts); got != want {
			t.Errorf("backoff after %d restarts = %v, want %v", restarts, got, want)
		}
	}
}
