package ssh

import (
	"context"
	"errors"
	"sync"

	"github.com/sony/gobreaker/v2"
)

// breakers hold one circuit breaker per server address. Only failures that
// say the server is down (refused, unreachable, DNS, handshake timeout)
// count: a rejected key proves the server up, and a cancelled job proves
// nothing.
type breakers struct {
	opts Options
	mu   sync.Mutex
	m    map[string]*gobreaker.CircuitBreaker[*conn]
}

func newBreakers(opts Options) *breakers {
	return &breakers{opts: opts, m: map[string]*gobreaker.CircuitBreaker[*conn]{}}
}

func (b *breakers) get(addr string) *gobreaker.CircuitBreaker[*conn] {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cb, ok := b.m[addr]; ok {
		return cb
	}
	failures := uint32(b.opts.BreakerFailures)
	cb := gobreaker.NewCircuitBreaker[*conn](gobreaker.Settings{
		Name:    addr,
		Timeout: b.opts.BreakerOpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= failures
		},
		IsSuccessful: func(err error) bool { return err == nil || !serverDown(err) },
		IsExcluded: func(err error) bool {
			return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errCtxDone)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			level := b.opts.Logger.Info
			if to == gobreaker.StateOpen {
				level = b.opts.Logger.Warn
			}
			level("ssh: circuit breaker changed state", "server", name, "from", from.String(), "to", to.String())
			b.opts.Observer.BreakerChanged(name, from.String(), to.String())
		},
	})
	b.m[addr] = cb
	return cb
}

// connect runs dial through addr's breaker.
func (b *breakers) connect(addr string, dial func() (*conn, error)) (*conn, error) {
	c, err := b.get(addr).Execute(dial)
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return nil, errorf(ErrBreakerOpen, "ssh: %s: circuit breaker open after %d consecutive connection failures; "+
			"failing fast, next attempt within %s", addr, b.opts.BreakerFailures, b.opts.BreakerOpenTimeout)
	}
	return c, err
}
