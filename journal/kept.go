package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/cronium/orchestrator/output"
)

// keptMagic starts a kept-output file: then a line of JSON (keptHeader)
// saying how long each part is, then the parts' bytes as they are. The
// earlier format, JSON with the parts in base64, is still read: at each
// save it made a 32 MB output about 150 MB of memory at once (the base64,
// encoding/json's buffer and its copy).
const keptMagic = "cronium-kept-output 1\n"

type keptHeader struct {
	Seq     uint64          `json:"seq"`
	Streams [2]keptCounters `json:"streams"`
}

type keptCounters struct {
	Head  int   `json:"head"` // bytes of the head that follow
	Tail  int   `json:"tail"`
	Total int64 `json:"total"`
	Lines int64 `json:"lines"`
}

// writeKept writes k in the kept-output format.
func writeKept(w io.Writer, k output.Kept) error {
	h := keptHeader{Seq: k.Seq}
	for i, s := range k.Streams {
		h.Streams[i] = keptCounters{Head: len(s.Head), Tail: len(s.Tail), Total: s.Total, Lines: s.Lines}
	}
	line, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, keptMagic+string(line)+"\n"); err != nil {
		return err
	}
	for _, s := range k.Streams {
		for _, part := range [][]byte{s.Head, s.Tail} {
			if _, err := w.Write(part); err != nil {
				return err
			}
		}
	}
	return nil
}

// readKept decodes a kept-output file, in either format.
func readKept(data []byte) (output.Kept, error) {
	var k output.Kept
	rest, ok := bytes.CutPrefix(data, []byte(keptMagic))
	if !ok {
		err := json.Unmarshal(data, &k) // the earlier format
		return k, err
	}
	line, parts, ok := bytes.Cut(rest, []byte("\n"))
	if !ok {
		return k, errors.New("kept output: no header")
	}
	var h keptHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return k, fmt.Errorf("kept output: header: %w", err)
	}
	k.Seq = h.Seq
	take := func(n int) ([]byte, error) {
		if n < 0 || n > len(parts) {
			return nil, errors.New("kept output: shorter than its header says")
		}
		b := parts[:n:n]
		parts = parts[n:]
		return b, nil
	}
	for i, c := range h.Streams {
		head, err := take(c.Head)
		if err != nil {
			return k, err
		}
		tail, err := take(c.Tail)
		if err != nil {
			return k, err
		}
		k.Streams[i] = output.KeptStream{Head: head, Tail: tail, Total: c.Total, Lines: c.Lines}
	}
	if len(parts) != 0 {
		return k, errors.New("kept output: longer than its header says")
	}
	return k, nil
}
