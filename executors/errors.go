package executors

import (
	"errors"
)

var (
	// ErrDetached is the cancellation cause that tells Run to leave the
	// execution running (see Executor). Run's error wraps it when it
	// returned because of it.
	ErrDetached = errors.New("detached from the execution; it keeps running")

	// ErrCancelled is the cancellation cause for a job stopped on request.
	// Any cause other than ErrDetached stops the execution; this one also
	// makes the Result read Cancelled.
	ErrCancelled = errors.New("job cancelled")

	// ErrInvalidSpec means the job cannot run as described (no script,
	// unknown language, bad URL, ...). Retrying will not help.
	ErrInvalidSpec = errors.New("invalid job")

	// ErrNotResumable means an earlier attempt may have started the
	// execution and this executor cannot tell what became of it, so it
	// refuses to start it a second time.
	ErrNotResumable = errors.New("execution cannot be resumed")

	// ErrTargetUnknown means Abandon was not told where the execution ran
	// and cannot find it on its own (SSH, without the job's servers).
	ErrTargetUnknown = errors.New("where the execution ran is not known")
)

// RetryableError marks an infrastructure failure after which the execution
// may still be alive (a dropped SSH connection, a Docker daemon restart):
// a later Run with Resume set can pick it up again.
type RetryableError struct{ Err error }

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// Retryable wraps err as a RetryableError; nil stays nil.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return &RetryableError{Err: err}
}

// IsRetryable reports whether err, or any error it wraps, is retryable.
func IsRetryable(err error) bool {
	var r *RetryableError
	return errors.As(err, &r)
}
