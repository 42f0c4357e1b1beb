package output

// Kept is what a Log keeps, in a form that can be stored and put back:
// a restarted orchestrator carries a job's output on from it instead of
// losing what was already shipped.
type Kept struct {
	Streams [2]KeptStream `json:"streams"`
	Seq     uint64        `json:"seq"`
}

// KeptStream is one stream's kept head and tail and its totals.
type KeptStream struct {
	Head  []byte `json:"head"`
	Tail  []byte `json:"tail"`
	Total int64  `json:"total"`
	Lines int64  `json:"lines"`
}

// Kept returns a copy of what the log keeps.
func (l *Log) Kept() Kept {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := Kept{Seq: l.seq}
	for i, b := range l.streams {
		k.Streams[i] = KeptStream{Head: append([]byte(nil), b.head...), Tail: append([]byte(nil), b.keptTail()...),
			Total: b.total, Lines: b.lines}
	}
	return k
}

// Restore replaces what the log keeps with k; later writes carry on after
// it, as if they had followed it in one log. Parts beyond this log's caps
// are cut as writes would have cut them.
func (l *Log) Restore(k Kept) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, b := range l.streams {
		nb := newBuffer(int64(b.headCap + b.tailCap))
		ks := k.Streams[i]
		nb.write(ks.Head)
		nb.write(ks.Tail)
		nb.total, nb.lines = ks.Total, ks.Lines
		l.streams[i] = nb
	}
	l.seq = k.Seq
}
