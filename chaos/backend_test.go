package chaos_test

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// backendFault is how the backend misbehaves for a while.
type backendFault int

const (
	healthy  backendFault = iota
	failing               // a share of calls answer 500 before doing anything
	stalling              // a share of calls hang past the client's timeout, then are dropped undone
	slow                  // a share of calls are delayed, then done
)

// faultyBackend is the embedded backend behind a door that misbehaves on
// the internal API as the driver says. Every fault is a refusal or a
// delay: nothing is done and then denied. A slowed call is applied even
// when its caller went away meanwhile (net/http notices that only once
// the body is read, which the delay comes before), as a real backend
// would: a call of a process killed with it in flight lands after the
// restarted process started.
type faultyBackend struct {
	next  http.Handler
	stall time.Duration // longer than the orchestrator's request timeout

	mu    sync.Mutex
	mode  backendFault
	share float64
	rng   *rand.Rand
	hurt  map[backendFault]int // calls each fault hit
}

func newFaultyBackend(next http.Handler, seed uint64, stall time.Duration) *faultyBackend {
	return &faultyBackend{next: next, stall: stall, rng: rand.New(rand.NewPCG(seed, 7)), hurt: map[backendFault]int{}}
}

func (b *faultyBackend) set(mode backendFault, share float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mode, b.share = mode, share
}

// decide picks what happens to one call, and for how long it waits.
func (b *faultyBackend) decide() (backendFault, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mode == healthy || b.rng.Float64() >= b.share {
		return healthy, 0
	}
	b.hurt[b.mode]++
	switch b.mode {
	case stalling:
		return stalling, b.stall
	case slow:
		return slow, time.Duration(200+b.rng.IntN(800)) * time.Millisecond
	}
	return b.mode, 0
}

func (b *faultyBackend) hits() map[backendFault]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[backendFault]int{}
	for k, v := range b.hurt {
		out[k] = v
	}
	return out
}

func (b *faultyBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/api/internal/") {
		b.next.ServeHTTP(w, r)
		return
	}
	mode, wait := b.decide()
	switch mode {
	case failing:
		http.Error(w, `{"error":"chaos: failing"}`, http.StatusInternalServerError)
		return
	case stalling:
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
		}
		// The caller gave up (or should have): the call is dropped undone.
		http.Error(w, `{"error":"chaos: stalled"}`, http.StatusGatewayTimeout)
		return
	case slow:
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		}
	}
	b.next.ServeHTTP(w, r)
}
