package supervisor

import (
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name    string
		offsets []time.Duration // restart times after t0
		want    []bool
	}{
		{"within budget", []time.Duration{0, time.Second, 2 * time.Second}, []bool{true, true, true}},
		{"fourth in window is over", []time.Duration{0, 1, 2, 3}, []bool{true, true, true, false}},
		{"old restarts age out", []time.Duration{0, time.Second, 2 * time.Second, 61 * time.Second}, []bool{true, true, true, true}},
		{"crash loop stays over", []time.Duration{0, 1, 2, 3, 4}, []bool{true, true, true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBudget(3, time.Minute)
			for i, off := range tt.offsets {
				if got := b.spend(t0.Add(off)); got != tt.want[i] {
					t.Fatalf("restart %d: got %v, want %v", i, got, tt.want[i])
				}
			}
		})
	}
}
