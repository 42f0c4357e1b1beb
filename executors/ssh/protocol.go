package ssh

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// frame is one message of the remote run and follow steps (see remote.sh):
//
//	A <dir> <elapsed s>   attached to the spool; the job started elapsed ago
//	N                     no launched spool exists for this execution
//	F <message>           the remote step failed
//	O <n> / E <n>         n bytes of the job's stdout / stderr follow
//	H                     heartbeat while the job is silent
//	X <status> <how> ...  the job ended: how is exit, timeout, cancelled;
//	                      then its cost, as key=value words (parseCost)
//	S <dir>               (run, setup) the job was launched
//	C <name> <execution>  (dangling) an ended spool of this orchestrator
//	R <name>              (sweep) the spool was removed
//	D                     (abandon, dangling, sweep) done
type frame struct {
	kind byte
	args []string
	n    int64
}

// frameReader reads the frames of one remote step. Before its first frame
// the step prints a sync line (see remoteCommand): whatever the user's
// login shell printed before the step started (a .bashrc that echoes) is
// skipped up to it.
type frameReader struct {
	r *bufio.Reader
	// sync is the line still to be found; empty once found.
	sync string
	// buf and lr serve every payload, so that a frame costs no allocation.
	buf []byte
	lr  io.LimitedReader
}

func newFrameReader(r io.Reader, sync string) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, 64<<10), sync: sync}
}

// maxHeader bounds a header line; only F messages are long.
const maxHeader = 8 << 10

// maxNoise bounds what a login shell may print before the sync line.
const maxNoise = 64 << 10

// next reads one header. For O and E frames the caller must then consume
// exactly n bytes with payload.
func (f *frameReader) next() (frame, error) {
	if f.sync != "" {
		if err := f.skipNoise(); err != nil {
			return frame{}, err
		}
	}
	line, err := f.readLine()
	if err != nil {
		return frame{}, err
	}
	if line == "" {
		return frame{}, fmt.Errorf("%w: empty frame", ErrRemote)
	}
	fr := frame{kind: line[0], args: strings.Fields(line[1:])}
	switch fr.kind {
	case 'O', 'E':
		if len(fr.args) != 1 {
			return frame{}, fmt.Errorf("%w: bad frame %q", ErrRemote, line)
		}
		fr.n, err = strconv.ParseInt(fr.args[0], 10, 64)
		if err != nil || fr.n < 0 {
			return frame{}, fmt.Errorf("%w: bad frame %q", ErrRemote, line)
		}
	case 'F':
		fr.args = []string{strings.TrimSpace(line[1:])}
	case 'A', 'N', 'H', 'X', 'S', 'D', 'C', 'R':
	default:
		return frame{}, fmt.Errorf("%w: unknown frame %q", ErrRemote, truncate(line, 80))
	}
	return fr, nil
}

// skipNoise discards lines up to the one that ends with the sync token
// (noise without a final newline shares its line), maxNoise bytes at most.
func (f *frameReader) skipNoise() error {
	skipped := 0
	for {
		chunk, isPrefix, err := f.r.ReadLine()
		if err != nil {
			return err
		}
		if !isPrefix && bytes.HasSuffix(chunk, []byte(f.sync)) {
			if skipped += len(chunk) - len(f.sync); skipped <= maxNoise {
				f.sync = ""
				return nil
			}
		}
		if skipped += len(chunk) + 1; skipped > maxNoise {
			return fmt.Errorf("%w: the login shell printed more than %d KiB before the remote step started "+
				"(check the user's .bashrc or .profile)", ErrRemote, maxNoise>>10)
		}
	}
}

func (f *frameReader) readLine() (string, error) {
	var b strings.Builder
	for {
		chunk, isPrefix, err := f.r.ReadLine()
		if err != nil {
			return "", err
		}
		b.Write(chunk)
		if b.Len() > maxHeader {
			return "", fmt.Errorf("%w: frame header too long", ErrRemote)
		}
		if !isPrefix {
			return b.String(), nil
		}
	}
}

// payload copies the n bytes that follow an O or E header to w. It returns
// how many reached w, which is what the resume offsets must count, also
// when the connection dropped half-way.
func (f *frameReader) payload(w io.Writer, n int64) (int64, error) {
	if f.buf == nil {
		f.buf = make([]byte, 32<<10)
	}
	f.lr = io.LimitedReader{R: f.r, N: n}
	k, err := io.CopyBuffer(w, &f.lr, f.buf)
	if k < n && err == nil {
		err = io.ErrUnexpectedEOF
	}
	return k, err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
