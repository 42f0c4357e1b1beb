package docker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Replaying output from the log driver, for a resumed Run.
//
// The logs API sends one stdcopy frame per log message, and the daemon cuts
// output into messages at every newline and every 16 KiB of a longer line
// (logChunk). Up to API 1.41 (Docker 20.10), the local driver drops the
// newline after the last piece of such a long line when it reads the log
// back, and drops the piece entirely when it is empty. Replayed output then
// differs from what an attached Run saw, and resume offsets land in the
// wrong place. With repair set, replay puts those newlines back, which the
// frame sizes allow: a piece that is not the last is exactly logChunk bytes
// without a newline; the frame after it on the same stream ends the line.
// Only at the end of a stream is it ambiguous whether a long last line had
// a newline: replay assumes it had, as printed lines usually do.

const (
	logChunk = 16 << 10
	maxFrame = 1 << 20 // far above any message; more means a corrupt stream

	stdoutID = 1
	stderrID = 2
	syserrID = 3
)

var newline = []byte{'\n'}

// replay writes the streams of a log read to out, skipping the first skip
// bytes of each (output earlier Runs or an earlier pass delivered).
type replay struct {
	out    [3]io.Writer // by stream id
	skip   [3]int64
	n      [3]int64 // bytes of each stream replayed, skipped or not
	repair bool

	open    [3]bool // the last frame was a piece of a long line, not its last
	pending [3]bool // the last frame ended a long line: a newline is owed
}

func newReplay(stdout, stderr io.Writer, skipOut, skipErr int64, repair bool) *replay {
	r := &replay{repair: repair}
	r.out[stdoutID], r.out[stderrID] = stdout, stderr
	r.skip[stdoutID], r.skip[stderrID] = skipOut, skipErr
	return r
}

// again is a replay of the same log from the start that writes only what r
// has not: for a second pass over a log r read only part of.
func (r *replay) again() *replay {
	next := newReplay(r.out[stdoutID], r.out[stderrID], 0, 0, r.repair)
	for _, s := range []int{stdoutID, stderrID} {
		next.skip[s] = max(r.skip[s], r.n[s])
	}
	return next
}

// copyFrom replays a multiplexed log stream until its end.
func (r *replay) copyFrom(src io.Reader) error {
	var hdr [8]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		size := binary.BigEndian.Uint32(hdr[4:])
		if size > maxFrame {
			return fmt.Errorf("log frame of %d bytes: corrupt stream", size)
		}
		buf = slices.Grow(buf[:0], int(size))[:size]
		if _, err := io.ReadFull(src, buf); err != nil {
			return fmt.Errorf("read log frame: %w", err)
		}
		switch hdr[0] {
		case stdoutID, stderrID:
			if err := r.frame(int(hdr[0]), buf); err != nil {
				return err
			}
		case syserrID:
			return fmt.Errorf("daemon: %s", bytes.TrimSpace(buf))
		}
	}
}

// frame replays one log message of stream s.
func (r *replay) frame(s int, p []byte) error {
	if !r.repair {
		return r.emit(s, p)
	}
	if r.pending[s] {
		r.pending[s] = false
		if err := r.emit(s, newline); err != nil {
			return err
		}
	}
	endsLine := len(p) > 0 && p[len(p)-1] == '\n'
	switch {
	case len(p) == logChunk && !endsLine:
		r.open[s] = true
	case r.open[s] && !endsLine:
		r.open[s], r.pending[s] = false, true
	case r.open[s]:
		// The long line's last piece was empty and dropped: this frame is
		// the next line.
		r.open[s] = false
		if err := r.emit(s, newline); err != nil {
			return err
		}
	}
	return r.emit(s, p)
}

// end settles what the last frames of the complete log left open.
func (r *replay) end() error {
	for _, s := range []int{stdoutID, stderrID} {
		if r.pending[s] || r.open[s] {
			r.pending[s], r.open[s] = false, false
			if err := r.emit(s, newline); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *replay) emit(s int, p []byte) error {
	start := r.n[s]
	r.n[s] += int64(len(p))
	if r.n[s] <= r.skip[s] {
		return nil
	}
	if start < r.skip[s] {
		p = p[r.skip[s]-start:]
	}
	if _, err := r.out[s].Write(p); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
