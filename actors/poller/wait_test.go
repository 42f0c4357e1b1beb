package poller

import (
	"math"
	"testing"
	"time"
)

func TestPollWait(t *testing.T) {
	base := Settings{PollInterval: 2 * time.Second, OrphanInterval: time.Minute, LongPollWait: 25 * time.Second}
	with := func(f func(*Settings)) Settings { s := base; f(&s); return s }
	never := time.Duration(math.MaxInt64) // no periodic orphan check
	tests := []struct {
		name           string
		s              Settings
		backendMaxWait time.Duration
		untilOrphan    time.Duration
		want           time.Duration
	}{
		{"the backend answers at once (the real one)", base, 0, time.Minute, 0},
		{"the backend holds polls", base, 30 * time.Second, time.Minute, 25 * time.Second},
		{"the backend holds them for less", base, 10 * time.Second, time.Minute, 10 * time.Second},
		{"long polling off (short request timeout)", with(func(s *Settings) { s.LongPollWait = 0 }),
			30 * time.Second, time.Minute, 0},
		{"the wait would be shorter than the poll interval",
			with(func(s *Settings) { s.PollInterval = time.Minute }), 30 * time.Second, time.Minute, 0},
		{"orphan check soon: delayed by at most half its interval", base, 30 * time.Second,
			5 * time.Second, 25 * time.Second},
		{"short orphan interval bounds the wait", with(func(s *Settings) {
			s.PollInterval, s.OrphanInterval = 50*time.Millisecond, 300*time.Millisecond
		}), 30 * time.Second, 200 * time.Millisecond, 350 * time.Millisecond},
		{"orphan check at start-up only", with(func(s *Settings) { s.OrphanInterval = 0 }),
			30 * time.Second, never, 25 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pollWait(tt.s, tt.backendMaxWait, tt.untilOrphan); got != tt.want {
				t.Fatalf("pollWait = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIdleWait(t *testing.T) {
	s := Settings{PollInterval: 2 * time.Second, LongPollWait: 25 * time.Second}
	off := s
	off.LongPollWait = 0
	tests := []struct {
		name                        string
		s                           Settings
		asked, held, backendMaxWait time.Duration
		want                        time.Duration
	}{
		{"interval polling", s, 0, 0, 0, 2 * time.Second},
		{"held for its whole wait: the next is held at once", s, 25 * time.Second, 25 * time.Second, 30 * time.Second, 0},
		{"answered early (released, or not holding): the interval", s, 25 * time.Second, time.Second, 30 * time.Second, 2 * time.Second},
		{"the first answer says polls can be held", s, 0, 0, 30 * time.Second, 0},
		{"the backend holds polls, long polling off", off, 0, 0, 30 * time.Second, 2 * time.Second},
		{"the backend stopped holding polls", s, 25 * time.Second, 0, 0, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := idleWait(tt.s, tt.asked, tt.held, tt.backendMaxWait); got != tt.want {
				t.Fatalf("idleWait = %v, want %v", got, tt.want)
			}
		})
	}
}
