package job

import (
	"math"
	"time"

	"github.com/cronium/orchestrator/backend"
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
