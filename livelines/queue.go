package livelines

import "sync"

// queue holds one worker's lines, bounded in bytes: pushing beyond the
// bound drops the oldest lines. It never blocks for longer than its lock.
type queue struct {
	mu       sync.Mutex
	lines    []Line
	bytes    int
	maxBytes int
	wake     chan struct{} // holds a token while lines wait
}

func newQueue(maxBytes int) *queue {
	return &queue{maxBytes: maxBytes, wake: make(chan struct{}, 1)}
}

func cost(l Line) int { return len(l.Text) + len(l.LogID) + perLineOverhead }

// push appends l and returns how many old lines it dropped to make room.
func (q *queue) push(l Line) int {
	q.mu.Lock()
	q.lines = append(q.lines, l)
	q.bytes += cost(l)
	n := q.trimLocked()
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return n
}

// requeue puts lines not sent back in front of those queued since, and
// returns how many of the oldest it dropped to stay within the bound.
func (q *queue) requeue(lines []Line) int {
	if len(lines) == 0 {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.lines = append(append([]Line(nil), lines...), q.lines...)
	for _, l := range lines {
		q.bytes += cost(l)
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return q.trimLocked()
}

// trimLocked drops the oldest lines beyond the bound, the newest excepted.
func (q *queue) trimLocked() int {
	n := 0
	for q.bytes > q.maxBytes && len(q.lines) > 1 {
		q.bytes -= cost(q.lines[0])
		q.lines[0] = Line{} // let the text go
		q.lines = q.lines[1:]
		n++
	}
	return n
}

// take removes and returns every queued line, oldest first.
func (q *queue) take() []Line {
	q.mu.Lock()
	defer q.mu.Unlock()
	lines := q.lines
	q.lines, q.bytes = nil, 0
	return lines
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.lines)
}
