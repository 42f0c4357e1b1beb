package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/cronium/orchestrator/backend"
)

// ErrTokenRejected: the backend answered 401 to the start-up probe. No
// retry fixes a wrong token, so the process exits and its supervisor (or
// operator) sees why at once.
var ErrTokenRejected = errors.New("the backend rejects the API token (401 Unauthorized): check CRONIUM_API_TOKEN or INTERNAL_API_KEY")

// Health probing: each probe is bounded; while the backend answers it is
// asked again every healthyEvery (unless another call was answered
// meanwhile), while it does not with backoff.
const (
	probeTimeout = 5 * time.Second
	healthyEvery = 30 * time.Second
)

// probeBackend asks the backend once, before the first poll. A rejected
// token is fatal; an unreachable backend is only said (at WARN): the
// watcher goes on saying so with backoff, and the poller keeps trying. It
// returns the probe's error for the watcher.
func (d *Daemon) probeBackend(ctx context.Context) (probed error, fatal error) {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	probed = d.client.Health(pctx)
	if errors.Is(probed, backend.ErrUnauthorized) {
		return probed, fmt.Errorf("%w (%s)", ErrTokenRejected, d.cfg.API.URL)
	}
	if probed != nil {
		d.log.Warn("backend not reachable; jobs wait until it is", "backend", d.cfg.API.URL, "err", probed)
	}
	return probed, nil
}

// watchBackend logs the backend's reachability as it changes: a failure at
// once at WARN and again after each backoff while it lasts, the recovery
// at INFO. first is the start-up probe's result. It returns a stop that
// waits for the watcher to end.
func (d *Daemon) watchBackend(ctx context.Context, first error) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.backendWatch(ctx, first)
	}()
	return func() { cancel(); wg.Wait() }
}

func (d *Daemon) backendWatch(ctx context.Context, last error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = time.Second, 5*time.Minute
	failures := 0
	if last != nil {
		failures = 1
	}
	for {
		wait := healthyEvery
		if last != nil {
			wait = b.NextBackOff()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		// Another call's answer within the interval says as much as a
		// probe would: an idle daemon's polls are its only traffic then.
		if last == nil && d.client.AnsweredSince(time.Now().Add(-healthyEvery)) {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		err := d.client.Health(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil && last != nil:
			d.log.Info("backend reachable again", "backend", d.cfg.API.URL, "failed_probes", failures)
			failures = 0
			b.Reset()
		case err != nil && errors.Is(err, backend.ErrUnauthorized):
			failures++
			d.log.Error("the backend rejects the API token; no job can be claimed until it is fixed",
				"backend", d.cfg.API.URL, "failed_probes", failures)
		case err != nil:
			failures++
			d.log.Warn("backend not reachable; jobs wait until it is", "backend", d.cfg.API.URL,
				"err", err, "failed_probes", failures)
		}
		last = err
	}
}
