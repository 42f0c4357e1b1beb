package daemontest

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/executors/fake"
)

// Fake is the scripted executor of executors/fake with one more knob,
// read from the job's environment like the fake's own:
//
//	TEST_HOLD_AFTER=N  the job's first Run delivers N lines of stdout,
//	                   then holds the rest until its JobActor detaches it
//	                   (a crash or a kill: the next Run resumes and
//	                   delivers it) or the test calls Release
//
// A test that must act while a job still runs (crash or kill its actors,
// look at it) holds the job there, however slow the machine: the job
// cannot end before the test has acted.
type Fake struct {
	*fake.Executor
	holding  atomic.Int32
	released chan struct{}
	release  sync.Once
}

// NewFake returns an empty Fake.
func NewFake() *Fake { return &Fake{Executor: fake.New(), released: make(chan struct{})} }

// Run implements executors.Executor.
func (f *Fake) Run(ctx context.Context, spec executors.Spec, out executors.Output) (executors.Result, error) {
	if n, err := strconv.Atoi(spec.Env["TEST_HOLD_AFTER"]); err == nil && !spec.Resume.Resuming {
		out.Stdout = &holdingWriter{f: f, ctx: ctx, w: out.Stdout, left: n}
	}
	return f.Executor.Run(ctx, spec, out)
}

// Holding is the number of Runs holding their output now.
func (f *Fake) Holding() int { return int(f.holding.Load()) }

// Release lets every held Run go on, and those to come pass.
func (f *Fake) Release() { f.release.Do(func() { close(f.released) }) }

// hold waits until the test releases the Run (true) or its context ends
// (false: detached or cancelled).
func (f *Fake) hold(ctx context.Context) bool {
	f.holding.Add(1)
	defer f.holding.Add(-1)
	select {
	case <-f.released:
		return true
	case <-ctx.Done():
		return false
	}
}

// holdingWriter passes left more lines, then holds.
type holdingWriter struct {
	f    *Fake
	ctx  context.Context
	w    io.Writer
	left int // lines still to pass; -1: all (released)
	gone bool
}

func (h *holdingWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if h.gone {
			// The Run was detached: what it would still deliver, the
			// next Run delivers from what was kept.
			return n + len(p), nil
		}
		if h.left == 0 {
			if !h.f.hold(h.ctx) {
				h.gone = true
				continue
			}
			h.left = -1
		}
		chunk := p
		if h.left > 0 {
			if i := bytes.IndexByte(p, '\n'); i >= 0 {
				chunk = p[:i+1]
				h.left--
			}
		}
		m, err := h.w.Write(chunk)
		n += m
		if err != nil {
			return n, err
		}
		p = p[len(chunk):]
	}
	return n, nil
}

var _ executors.Executor = (*Fake)(nil)
