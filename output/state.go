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

// Kept returns what the log keeps. Its bytes are the log's own, which are
// never written again (see buffer): read them, never change them.
func (l *Log) Kept() Kept {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := Kept{Seq: l.seq}
	for i, b := range l.streams {
		tail := b.keptTail()
		// Capped, so that an append to either makes a copy instead of
		// writing where the log writes next.
		k.Streams[i] = KeptStream{Head: b.head[:len(b.head):len(b.head)], Tail: tail[:len(tail):len(tail)],
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
		// Output was left out between head and tail: keep them apart.
		nb.split = ks.Total > int64(len(ks.Head)+len(ks.Tail))
		nb.write(ks.Head)
		nb.write(ks.Tail)
		nb.total, nb.lines = ks.Total, ks.Lines
		l.streams[i] = nb
	}
	l.seq = k.Seq
}
