package ssh

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/cronium/orchestrator/executors"
)

// connect takes n pool slots for srv. A fresh run tries once: a server that
// is down fails the job fast (and feeds the breaker). A resumed run has a
// job running out there, so it bypasses the breaker and keeps trying with
// backoff for about ReconnectBackoffMax (sshd restarting, a reboot) before
// it returns, and the supervisor's restart budget decides whether to try
// again.
func (e *Executor) connect(ctx context.Context, srv executors.Server, resuming bool, n int) (*lease, error) {
	if !resuming {
		return e.pool.acquireN(ctx, srv, false, n)
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     250 * time.Millisecond,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         e.opts.ReconnectBackoffMax,
	}
	log := e.opts.Logger.With("server", srv.Label())
	return backoff.Retry(ctx, func() (*lease, error) {
		// The breaker is bypassed: only a server that is down, or that
		// closed the connection during authentication, is worth another
		// attempt.
		l, err := e.pool.acquireN(ctx, srv, true, n)
		if err != nil && !worthReconnecting(err) {
			return nil, backoff.Permanent(err)
		}
		return l, err
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(e.opts.ReconnectBackoffMax),
		backoff.WithNotify(func(err error, next time.Duration) {
			log.Info("ssh: reconnect failed, retrying", "err", err, "next_in", next)
		}))
}
