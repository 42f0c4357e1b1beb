package docker

import (
	"errors"
	"io"
	"log/slog"
	"time"
)

// stream copies a container's output (attach or logs) to the execution's
// writers in a goroutine that close stops and waits for. It may also own
// the goroutine feeding stdin.
type stream struct {
	errc    chan error // the copy's result; receives exactly one value
	closeFn func()     // unblocks the copy
	fed     chan struct{}
	done    bool
	err     error
}

// startStream runs copyFn, which returns at the end of the output or when
// closeFn is called.
func startStream(copyFn func() error, closeFn func()) *stream {
	s := &stream{errc: make(chan error, 1), closeFn: closeFn}
	go func() { s.errc <- copyFn() }()
	return s
}

// feed runs write (sending stdin) in a goroutine close waits for.
func (s *stream) feed(write func()) {
	s.fed = make(chan struct{})
	go func() {
		defer close(s.fed)
		write()
	}()
}

// result is where the copy's result arrives; nil once it has been recorded.
func (s *stream) result() <-chan error {
	if s.done {
		return nil
	}
	return s.errc
}

func (s *stream) record(err error) {
	s.done, s.err = true, err
}

var errOutputNotEnded = errors.New("the output stream did not end after the container exited")

// drain waits up to d for the copy to reach the end of the output.
func (s *stream) drain(d time.Duration) error {
	if !s.done {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case err := <-s.errc:
			s.record(err)
		case <-t.C:
			return errOutputNotEnded
		}
	}
	return s.err
}

// close stops the copy and waits for the goroutines. A stdin feed still in
// progress gets a moment to finish first: cutting it would leave a resumed
// container with half a script.
func (s *stream) close(feedGrace time.Duration) {
	if s.fed != nil {
		t := time.NewTimer(feedGrace)
		select {
		case <-s.fed:
		case <-t.C:
		}
		t.Stop()
	}
	s.closeFn()
	if !s.done {
		s.record(<-s.errc)
	}
	if s.fed != nil {
		<-s.fed
	}
}

// outputWriter passes output to the caller's writer. A failing writer must
// not look like a failing daemon (that would make the run retryable), so
// its error is logged once and the output it refused is dropped.
type outputWriter struct {
	w      io.Writer
	log    *slog.Logger
	name   string
	failed bool // only the stream's goroutine writes
}

func newOutputWriter(w io.Writer, log *slog.Logger, name string) io.Writer {
	if w == nil {
		return io.Discard
	}
	return &outputWriter{w: w, log: log, name: name}
}

func (o *outputWriter) Write(p []byte) (int, error) {
	if o.failed {
		return len(p), nil
	}
	if _, err := o.w.Write(p); err != nil {
		o.failed = true
		o.log.Error("output writer failed; dropping the rest of the stream", "stream", o.name, "error", err)
	}
	return len(p), nil
}
