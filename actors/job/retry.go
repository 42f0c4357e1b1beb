package job

import (
	"math"
	"time"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/journal"
	"github.com/cronium/orchestrator/messages"
)

// maxRetryDelay bounds the wait before a retry, however the policy grows.
const maxRetryDelay = time.Hour

// retryDelay decides whether a job that ended with verdict v after tries
// attempts runs again under policy p, and after how long. Only a failure
// of the script is retried: a timeout would likely time out again, a
// cancel is the user's word, and a job the orchestrator could not run (a
// bad job, a missing image, a spent restart budget) fails the same way
// every time. Attempts are counted by the policy's maxAttempts, the first
// run included.
func retryDelay(p *backend.RetryPolicy, tries int, v verdict) (time.Duration, bool) {
	if p == nil || tries >= p.MaxAttempts || v.outcome != OutcomeFailure {
		return 0, false
	}
	base := time.Duration(max(p.BackoffDelay, 0) * float64(time.Second))
	var d time.Duration
	switch p.BackoffType {
	case "exponential":
		d = time.Duration(float64(base) * math.Pow(2, float64(tries-1)))
	case "linear":
		d = base * time.Duration(tries)
	default: // "fixed", or none named
		d = base
	}
	if d < 0 || d > maxRetryDelay { // overflowed, or just long
		d = maxRetryDelay
	}
	return d, true
}

// retryLocked is called once the failed attempt's final execution update
// was shipped: the log actor starts afresh, then nextTry begins the next
// attempt.
func (a *Actor) retryLocked() {
	a.run.retrying = false
	a.run.awaitingReset = true
	a.log.Info("job failed; retrying by its policy", "attempt", a.run.tries, "retry_in", a.run.retryIn)
	if a.deps.Observer != nil {
		a.deps.Observer.JobRetried()
	}
	kit.Send(a.engine, a.logActor, messages.ResetOutput{ReplyTo: a.self})
}

// nextTry starts the next attempt: a new execution record, the executor
// from scratch (not resumed), after the policy's delay.
func (a *Actor) nextTry() {
	r := a.run
	r.mu.Lock()
	if !r.awaitingReset {
		r.mu.Unlock()
		return
	}
	r.awaitingReset = false
	r.tries++
	r.execID = jobspec.NewExecutionID(r.job.ID, a.deps.Clock.Now())
	plan, err := jobspec.Build(r.job, r.execID, a.deps.Settings.DefaultTimeout)
	if err != nil { // it built before: only a bug gets here
		r.outcome = &outcome{err: err}
		r.phase = phaseComplete
	} else {
		r.plan = &plan
		r.outcome, r.attempts, r.lastDetach, r.launched = nil, 0, nil, false
		r.phase = phaseRegister
		r.journaled = journal.Claimed // the new execution is journaled when it starts
		r.notBefore = a.deps.Clock.Now().Add(r.retryIn)
	}
	r.mu.Unlock()
	a.advance()
}
