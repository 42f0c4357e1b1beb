package supervisor

import "time"

// budget allows max restarts within a sliding window, like suture's
// restart intensity: old restarts age out, so an actor that crashes once
// an hour is never given up on, one that crash-loops is.
type budget struct {
	max    int
	window time.Duration
	times  []time.Time
}

func newBudget(max int, window time.Duration) *budget {
	return &budget{max: max, window: window}
}

// spend records a restart at now and reports whether it was within budget.
func (b *budget) spend(now time.Time) bool {
	cutoff := now.Add(-b.window)
	kept := b.times[:0]
	for _, t := range b.times {
		if t.After(cutoff) {
			kept = append(kept, t)
		}
	}
	b.times = append(kept, now)
	return len(b.times) <= b.max
}

// used is the number of restarts within the window as of the last spend.
func (b *budget) used() int { return len(b.times) }
