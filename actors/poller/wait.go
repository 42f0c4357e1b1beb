package poller

import "time"

// The poller's timing decisions, as pure functions of its settings and of
// what the backend said (table-tested in wait_test.go).

// longPollWait is how long polls ask the backend to hold them, before the
// orphan check's bound: the shorter of Settings.LongPollWait and the
// backend's own limit, backendMaxWait (0: the backend answers at once).
// 0 when it is shorter than PollInterval: long polling never polls more
// often than interval polling would.
func longPollWait(s Settings, backendMaxWait time.Duration) time.Duration {
	w := min(s.LongPollWait, backendMaxWait)
	if w <= 0 || w < s.PollInterval {
		return 0
	}
	return w
}

// pollWait is the wait the next poll asks for: longPollWait, cut so that
// the held poll delays the next orphan check (due in untilOrphanCheck;
// polls and orphan checks never overlap) by at most half of
// OrphanInterval.
func pollWait(s Settings, backendMaxWait, untilOrphanCheck time.Duration) time.Duration {
	w := longPollWait(s, backendMaxWait)
	// With no periodic check, untilOrphanCheck is huge and the sum may
	// overflow to a negative: no bound then.
	if bound := untilOrphanCheck + s.OrphanInterval/2; w > 0 && bound > 0 && bound < w {
		w = bound
	}
	return w
}

// idleWait is the pause after a poll that claimed nothing, which asked for
// the wait asked and was answered after held; backendMaxWait is what the
// answer said of holding polls. None when the backend held the poll for
// (about) its wait, watching the queue all along, or when the poll asked
// for no wait but the answer says the next one can be held (the first
// answer from a backend that holds polls). Else PollInterval: the backend
// answered at once because it does not hold polls, or it released the
// poll early (e.g. while shutting down), which must not make the poller
// spin.
func idleWait(s Settings, asked, held, backendMaxWait time.Duration) time.Duration {
	switch {
	case asked > 0 && held >= asked/2:
		return 0
	case asked == 0 && longPollWait(s, backendMaxWait) > 0:
		return 0
	}
	return s.PollInterval
}
