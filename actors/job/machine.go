package job

import (
	"errors"
	"fmt"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/journal"
)

// The job's lifecycle as a pure function: next(State, event) returns the
// new State and the effects the JobActor carries out (backend calls,
// executor runs, journal writes, timers). Nothing here does I/O or reads
// a clock: events bring the time and the answers of effects, so every
// path can be tested with a table (machine_test.go).

// phase is how far a job has come. It only moves forward, except that a
// retry by the job's policy starts again at phaseRegister.
type phase int

const (
	phasePlan     phase = iota // build the plan (maybe fetch server credentials)
	phaseRegister              // create the execution record(s)
	phaseStart                 // PUT status running, once
	phaseExecute               // run (or resume) the executor
	phaseFinalize              // the log actor ships the final execution update
	phaseComplete              // POST /complete, once
	phaseDone
)

var phaseNames = [...]string{"planning", "registering", "starting", "running", "finalizing", "completing", "done"}

func (p phase) String() string { return phaseNames[p] }

// State is everything the lifecycle decides on. The JobActor is its only
// writer.
type State struct {
	Phase phase

	// Step is the backend step in flight (stepNone: none), StepSeq its
	// number: an answer is taken only for the step still awaited.
	Step    step
	StepSeq int
	// Executing says an executor attempt (number Attempts) is in flight;
	// Interrupted that the last one was cut by something a restart can
	// heal and the supervisor has not yet said whether the job resumes.
	Executing   bool
	Interrupted bool
	Finalizing  bool // FinalizeOutput sent, OutputFinalized awaited

	Planned  bool
	Servers  int   // servers of an SSH job (0: a container job)
	Disabled error // its kind of executor is disabled here
	Policy   *backend.RetryPolicy

	Resumed   bool      // restored from the journal: the execution may exist
	Launched  bool      // the executor said it started the execution
	StartedAt time.Time // the backend was told the job runs (once: it resets startedAt)

	Attempts  int // executor runs of this try, resumes included
	Tries     int // tries by the retry policy, each with its own execution record
	Instances int // JobActor instances started
	Restarts  int // actor restarts and interruptions, for backoff and metrics
	ResumeAt  time.Time

	Outcome *Outcome
	Cancel  *CancelRequest
	GiveUp  string

	Retrying      bool // the try failed and runs again after RetryIn
	AwaitingReset bool // the log actor is starting afresh for the next try
	RetryIn       time.Duration
	NotBefore     time.Time

	HaveCompletion bool // the completion was built (it is never rebuilt)
	Completed      bool // /complete was accepted
	CompleteFailed bool // /complete failed definitively; the supervisor retries it

	Journaled journal.Stage // the last stage kept in the journal
}

// Outcome is how the job ended.
type Outcome struct {
	Result executors.Result
	Err    error // the job could not run (infrastructure or invalid job)
}

// CancelRequest is why the job is being stopped.
type CancelRequest struct {
	Reason   string
	Shutdown bool // stopped by our own shutdown, not by the user
}

// step names a backend step, for the answer that ends it.
type step int

const (
	stepNone step = iota
	stepCredentials
	stepRegister
	stepMarkRunning
	stepAbandon
	stepComplete
)

var stepNames = [...]string{"none", "fetch server credentials", "create execution", "mark running",
	"abandon execution", "complete"}

func (s step) String() string { return stepNames[s] }

// Events: what happened to the job.
type (
	// evBegin: a JobActor instance started (the first, or a replacement).
	evBegin struct{}
	// evAdvance: a timer (resume, retry backoff) fired.
	evAdvance struct{}
	// evPlanned: the plan was built, or could not be.
	evPlanned struct {
		Err        error
		NeedsCreds bool
		Servers    int
		Disabled   error // its kind of executor is disabled here
		Policy     *backend.RetryPolicy
	}
	// evStepDone: a backend step ended.
	evStepDone struct {
		Seq int
		Err error
	}
	// evJournaled: a journal write ended.
	evJournaled struct {
		Stage journal.Stage
		Err   error
	}
	evLaunched     struct{}
	evAttemptEnded struct {
		N      int
		Result executors.Result
		Err    error
	}
	// evResume: the supervisor allows an interrupted job to resume.
	evResume        struct{}
	evCancel        CancelRequest
	evCancelChecked struct{ Cancelled bool }
	evGiveUp        struct{ Reason string }
	evFinalized     struct{}
	evOutputReset   struct{}
	// evNewExecution: the next try's plan, with a new execution id.
	evNewExecution struct{ Err error }
)

// Effects: what the JobActor must do. Those marked (sync) answer with an
// event at once; the others answer later in a message, or not at all.
type (
	effPlan struct{} // (sync) → evPlanned
	// The steps' effects carry out the step numbered State.StepSeq.
	effFetchCredentials struct{}
	effRegister         struct{}
	effMarkRunning      struct{}
	effObserveRunning   struct{}
	effJournal          struct{ Stage journal.Stage } // (sync) → evJournaled
	effStartAttempt     struct {
		N           int
		Resume      bool // resume the execution the journal or an earlier attempt left
		ResetOutput bool // replay the output from the start (a multi-server resume)
		Cancel      *CancelRequest
	}
	effStopAttempt      struct{ Cause error }
	effCheckCancelLater struct{}
	effInterrupted      struct{ Err error } // ask the supervisor whether to resume
	effAbandon          struct{ Started bool }
	effArmResume        struct{ After time.Duration }
	effBuildCompletion  struct{}
	effFinalizeOutput   struct{ Verdict verdict }
	effResetOutput      struct{}
	effRetried          struct{}
	effNewExecution     struct{} // (sync) → evNewExecution
	effComplete         struct{}
	effFinished         struct{ Verdict verdict }
	effLogStepFailed    struct {
		Step step
		Err  error
	}
)

// errGivenUp is the cancellation cause when the restart budget is spent.
var errGivenUp = errors.New("restart budget spent")

// machine holds the settings the decisions depend on.
type machine struct {
	backoffInitial, backoffMax time.Duration
}

// next is the lifecycle: the state after ev, which happened at now, and
// what to do about it.
func (m machine) next(s State, ev any, now time.Time) (State, []effect) {
	var out []effect
	switch e := ev.(type) {
	case evBegin:
		s.Instances++
		// A replacement's in-flight timers and answers died with the old
		// instance's mailbox view: ask again.
		s.Finalizing = false
		if s.Instances > 1 {
			s.Restarts++
			s.ResumeAt = now.Add(backoff(m.backoffInitial, m.backoffMax, s.Restarts))
		}
		return m.advance(s, now)
	case evAdvance:
		return m.advance(s, now)
	case evPlanned:
		return m.planned(s, e, now)
	case evStepDone:
		if s.Step == stepNone || e.Seq != s.StepSeq {
			return s, nil // an answer already taken, resent by a waiter
		}
		done := s.Step
		s.Step = stepNone
		if e.Err != nil {
			s, out = m.stepFailed(s, done, e.Err)
		} else {
			s, out = m.stepOK(s, done, now)
		}
		s, more := m.advance(s, now)
		return s, append(out, more...)
	case evJournaled:
		return m.journaled(s, e, now)
	case evLaunched:
		if s.Launched || !s.Executing {
			return s, nil
		}
		s.Launched = true
		return s, []effect{effJournal{Stage: journal.Running}}
	case evAttemptEnded:
		if !s.Executing || e.N != s.Attempts {
			return s, nil
		}
		s.Executing = false
		detached := errors.Is(e.Err, executors.ErrDetached)
		switch {
		case e.Err == nil:
			s.Outcome = &Outcome{Result: e.Result}
		case !detached && !executors.IsRetryable(e.Err):
			s.Outcome = &Outcome{Result: e.Result, Err: e.Err}
		case !detached && s.GiveUp == "":
			// Cut by something a restart can heal (a dropped connection,
			// a restarting Docker daemon): the supervisor's restart
			// budget decides whether it resumes.
			s.Interrupted = true
			return s, []effect{effInterrupted{Err: e.Err}}
		}
		// Detached (the instance that ran it is gone: the next one
		// resumes) or given up on (advance abandons it).
		return m.advance(s, now)
	case evResume:
		if !s.Interrupted {
			return s, nil
		}
		s.Interrupted = false
		s.Restarts++
		s.ResumeAt = now.Add(backoff(m.backoffInitial, m.backoffMax, s.Restarts))
		return m.advance(s, now)
	case evCancel:
		if s.Phase > phaseExecute || s.Cancel != nil {
			return s, nil
		}
		c := CancelRequest(e)
		s.Cancel = &c
		if s.Executing {
			out = append(out, effStopAttempt{Cause: cancelCause(&c)})
		}
		// An interrupted execution is resumed with the cancel, which
		// stops it where it runs.
		s.Interrupted = false
		s, more := m.advance(s, now)
		return s, append(out, more...)
	case evCancelChecked:
		if e.Cancelled {
			return m.next(s, evCancel{Reason: "cancelled in Cronium"}, now)
		}
		if s.Executing && s.Cancel == nil {
			return s, []effect{effCheckCancelLater{}}
		}
		return s, nil
	case evGiveUp:
		if s.Phase >= phaseFinalize || s.GiveUp != "" {
			return s, nil
		}
		s.GiveUp = e.Reason
		s.Interrupted = false
		switch {
		case s.Executing:
			out = append(out, effStopAttempt{Cause: errGivenUp})
		case s.Phase < phaseExecute:
			s.Outcome = &Outcome{Err: errors.New(e.Reason)}
		}
		s, more := m.advance(s, now)
		return s, append(out, more...)
	case evFinalized:
		if s.Phase != phaseFinalize || !s.Finalizing || s.AwaitingReset {
			return s, nil
		}
		s.Finalizing = false
		if s.Retrying {
			s.Retrying, s.AwaitingReset = false, true
			return s, []effect{effRetried{}, effResetOutput{}}
		}
		s.Phase = phaseComplete
		return m.advance(s, now)
	case evOutputReset:
		if !s.AwaitingReset {
			return s, nil
		}
		s.AwaitingReset = false
		s.Tries++
		return s, []effect{effNewExecution{}}
	case evNewExecution:
		if s.Phase != phaseFinalize || s.AwaitingReset || s.Tries < 2 {
			return s, nil
		}
		if e.Err != nil { // it built before: only a bug gets here
			s.Outcome, s.Phase = &Outcome{Err: e.Err}, phaseComplete
			return m.advance(s, now)
		}
		s.Outcome, s.Attempts, s.Launched, s.Resumed = nil, 0, false, false
		s.Phase = phaseRegister
		s.Journaled = journal.Claimed // the new execution is journaled when it starts
		s.NotBefore = now.Add(s.RetryIn)
		return m.advance(s, now)
	}
	return s, nil
}

// advance starts the next step when nothing is in flight. Any event may
// call it: it does nothing while a step, an attempt or a verdict of the
// supervisor is awaited.
func (m machine) advance(s State, now time.Time) (State, []effect) {
	var out []effect
	for {
		if s.Step != stepNone || s.Executing || s.Interrupted {
			return s, out
		}
		switch s.Phase {
		case phasePlan:
			return s, append(out, effPlan{})
		case phaseRegister:
			return m.begin(s, stepRegister, out, effRegister{})
		case phaseStart:
			switch {
			case s.Outcome != nil: // cancelled or given up before it started
				s.Phase = phaseFinalize
			case !s.StartedAt.IsZero(): // a retry: the backend knows the job runs
				s.Phase = phaseExecute
			default:
				return m.begin(s, stepMarkRunning, out, effMarkRunning{})
			}
		case phaseExecute:
			var more []effect
			var waiting bool
			s, more, waiting = m.execute(s, now)
			out = append(out, more...)
			if waiting {
				return s, out
			}
		case phaseFinalize:
			if s.Finalizing {
				return s, out
			}
			if s.AwaitingReset { // a restarted instance: ask again
				return s, append(out, effResetOutput{})
			}
			v := s.verdict()
			if !s.HaveCompletion && !s.Retrying {
				s.RetryIn, s.Retrying = retryDelay(s.Policy, s.Tries, v)
			}
			// The final update is asked for first: the LogActor ships it
			// while the completion below is built and journaled (the
			// whole output, synced: a second or more for tens of MB).
			s.Finalizing = true
			out = append(out, effFinalizeOutput{Verdict: v})
			if !s.Retrying {
				// The result is known: the completion is built now, with
				// the whole output, and journaled, so that a restart
				// still sends it.
				if !s.HaveCompletion {
					s.HaveCompletion = true
					out = append(out, effBuildCompletion{})
				}
				if s.Journaled != journal.Completing {
					out = append(out, effJournal{Stage: journal.Completing})
				}
			}
			return s, out
		case phaseComplete:
			if !s.HaveCompletion {
				s.HaveCompletion = true
				out = append(out, effBuildCompletion{})
			}
			return m.begin(s, stepComplete, out, effComplete{})
		case phaseDone:
			return s, append(out, effFinished{Verdict: s.verdict()})
		}
	}
}

// begin marks a backend step in flight and numbers it; its effect
// carries out the step numbered State.StepSeq.
func (m machine) begin(s State, st step, out []effect, eff effect) (State, []effect) {
	s.Step = st
	s.StepSeq++
	return s, append(out, eff)
}

// execute decides what the execute phase does now; waiting says it waits
// for an answer or a timer (else the phase moved on).
func (m machine) execute(s State, now time.Time) (State, []effect, bool) {
	switch {
	case s.Outcome != nil:
		s.Phase = phaseFinalize
		return s, nil, false
	case s.GiveUp != "":
		s, out := m.begin(s, stepAbandon, nil, effAbandon{Started: s.Attempts > 0})
		return s, out, true
	case s.Cancel != nil && s.Attempts == 0:
		s.Outcome = &Outcome{Result: executors.Result{Cancelled: true}}
		s.Phase = phaseFinalize
		return s, nil, false
	case s.Disabled != nil:
		s.Outcome = &Outcome{Err: s.Disabled}
		s.Phase = phaseFinalize
		return s, nil, false
	}
	until := s.ResumeAt
	if s.NotBefore.After(until) {
		until = s.NotBefore // a retry's backoff
	}
	if until.After(now) {
		return s, []effect{effArmResume{After: until.Sub(now)}}, true
	}
	if s.Journaled != journal.Running {
		// Journaled before the executor can start anything: a restart
		// then resumes this execution instead of releasing the job.
		return s, []effect{effJournal{Stage: journal.Running}}, true
	}
	s.Attempts++
	s.Executing = true
	start := effStartAttempt{N: s.Attempts, Resume: s.Attempts > 1, Cancel: s.Cancel,
		ResetOutput: s.Resumed && s.Attempts == 2 && s.Servers > 1}
	return s, []effect{start, effCheckCancelLater{}}, true
}

func (m machine) planned(s State, e evPlanned, now time.Time) (State, []effect) {
	if s.Phase != phasePlan || s.Step != stepNone {
		return s, nil // planned already
	}
	switch {
	case e.NeedsCreds:
		s, out := m.begin(s, stepCredentials, nil, effFetchCredentials{})
		return s, out
	case e.Err != nil:
		s.Outcome = &Outcome{Err: e.Err}
		s.Phase = phaseComplete // no execution record to finalize
		return m.advance(s, now)
	}
	s.Planned, s.Servers, s.Disabled, s.Policy = true, e.Servers, e.Disabled, e.Policy
	var out []effect
	if s.Resumed {
		// Restored from the journal: the execution record exists and the
		// backend was told the job runs.
		s.Phase = phaseExecute
	} else {
		s.Phase = phaseRegister
		out = append(out, effJournal{Stage: journal.Claimed})
	}
	s, more := m.advance(s, now)
	return s, append(out, more...)
}

func (m machine) stepOK(s State, done step, now time.Time) (State, []effect) {
	switch done {
	case stepRegister:
		s.Phase = phaseStart
	case stepMarkRunning:
		s.Phase, s.StartedAt = phaseExecute, now
		return s, []effect{effObserveRunning{}}
	case stepAbandon:
		s.Outcome = &Outcome{Err: errors.New(s.GiveUp)}
		s.Phase = phaseFinalize
	case stepComplete:
		s.Completed, s.Phase = true, phaseDone
	}
	return s, nil
}

// stepFailed decides what a failed backend step means. Before the job ran,
// it ends the job as "could not run"; a failed /complete is left for the
// supervisor to retry (the backend is unreachable).
func (m machine) stepFailed(s State, done step, err error) (State, []effect) {
	out := []effect{effLogStepFailed{Step: done, Err: err}}
	err = stepError{step: done, err: err}
	switch {
	case done == stepComplete:
		s.CompleteFailed, s.Phase = true, phaseDone
	case s.Phase < phaseExecute:
		s.Outcome = &Outcome{Err: err}
		if s.Planned {
			s.Phase = phaseFinalize
		} else {
			s.Phase = phaseComplete // no execution record to finalize
		}
	case done == stepAbandon: // never fails, but if it did: end the job
		s.Outcome = &Outcome{Err: errors.New(s.GiveUp)}
		s.Phase = phaseFinalize
	}
	return s, out
}

func (m machine) journaled(s State, e evJournaled, now time.Time) (State, []effect) {
	if e.Err != nil {
		out := []effect{effLogStepFailed{Step: stepNone, Err: journalError{stage: e.Stage, err: e.Err}}}
		if e.Stage == journal.Running && !s.Executing && s.Attempts == 0 && !s.Resumed {
			// Not started yet: a job this process could not find again
			// after a restart would be run twice or lost. Do not start it.
			s.Outcome = &Outcome{Err: journalError{stage: e.Stage, err: e.Err}}
			s.Phase = phaseFinalize
			s, more := m.advance(s, now)
			return s, append(out, more...)
		}
		// Later stages cost only recovery: the job goes on.
		if e.Stage == journal.Running {
			s.Journaled = journal.Running
		}
		s, more := m.advance(s, now)
		return s, append(out, more...)
	}
	s.Journaled = e.Stage
	if e.Stage == journal.Running && !s.Executing {
		return m.advance(s, now)
	}
	return s, nil
}

// verdict is what the backend is told, as the state stands.
func (s State) verdict() verdict {
	var o Outcome
	if s.Outcome != nil {
		o = *s.Outcome
	}
	return judge(o, s.Cancel, s.GiveUp, s.Servers)
}

// backoff doubles per restart from initial, up to max.
func backoff(initial, max time.Duration, restarts int) time.Duration {
	d := initial
	for i := 1; i < restarts && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// stepError is a failed backend step, named.
type stepError struct {
	step step
	err  error
}

func (e stepError) Error() string { return e.step.String() + ": " + e.err.Error() }
func (e stepError) Unwrap() error { return e.err }

// journalError is a journal write that failed.
type journalError struct {
	stage journal.Stage
	err   error
}

func (e journalError) Error() string {
	return fmt.Sprintf("could not record the job as %s in the state directory: %v", e.stage, e.err)
}
func (e journalError) Unwrap() error { return e.err }

func cancelCause(c *CancelRequest) error {
	return fmt.Errorf("%w: %s", executors.ErrCancelled, c.Reason)
}
