package ssh

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/cronium/orchestrator/executors"
)

// connect takes a pool slot for srv. A fresh run tries once: a server that
// is down fails the job fast (and feeds the breaker). A resumed run has a
// job running out there, so it bypasses the breaker and keeps trying with
// backoff for about ReconnectBackoffMax (sshd restarting, a reboot) before
// it returns, and the supervisor's restart budget decides whether to try
// again.
func (e *Executor) connect(ctx context.Context, srv executors.Server, resuming bool) (*lease, error) {
	if !resuming {
		return e.pool.acquire(ctx, srv, false)
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     250 * time.Millisecond,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         e.opts.ReconnectBackoffMax,
	}
	log := e.opts.Logger.With("server", srv.Label())
	return backoff.Retry(ctx, func() (*lease, error) {
		l, err := e.pool.acquire(ctx, srv, true)
		if err != nil && !reconnectable(err) {
			return nil, backoff.Permanent(err)
		}
		return l, err
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(e.opts.ReconnectBackoffMax),
		backoff.WithNotify(func(err error, next time.Duration) {
			log.Info("ssh: reconnect failed, retrying", "err", err, "next_in", next)
		}))
}

// reconnectable reports whether the server may come back by itself:
// worth another attempt for a job that is still running on it.
func reconnectable(err error) bool {
	return serverDown(err) || errors.Is(err, ErrBreakerOpen)
}
