package ssh

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
)

// fuzzSync has the shape of remoteCommand's sync token.
const fuzzSync = "cronium-sync-0123456789abcdef01234567"

// FuzzFrameReader reads arbitrary remote output as each remote step does:
// frame by frame with payloads (follow), up to D (abandon, dangling,
// sweep), and the one frame of setup. It never panics or loops, every
// frame it returns is well formed, and every error is the stream's end or
// ErrRemote.
func FuzzFrameReader(f *testing.F) {
	for _, s := range []string{
		fuzzSync + "\nA /tmp/cronium-x 3\nO 5\nhelloE 3\nerrH\nX 0 exit\n",
		"Welcome!\nS fake frame\n" + fuzzSync + "\nS /tmp/cronium-1.e.XXXX\n",
		"noise" + fuzzSync + "\r\nN\n",
		fuzzSync + "\nC cronium-1.e.abc 65786563\nC ../etc 00\nC cronium-x zz\nR cronium-1.e.abc\nD\n",
		fuzzSync + "\nF  it failed: no space left \n",
		fuzzSync + "\nO 10\nabc",
		fuzzSync + "\nO -1\n",
		fuzzSync + "\nO 9223372036854775807\nx",
		fuzzSync + "\nO 1 2\nx",
		fuzzSync + "\nX\nX 1\nX 137 exit\nX 143 timeout\nX 0 cancelled\nX 0 lost\nX 99999999999999999999 exit\n",
		fuzzSync + "\n\n",
		fuzzSync + "\nZ what\n",
		fuzzSync + "\n" + strings.Repeat("F", maxHeader+2) + "\n",
		strings.Repeat("n", 100) + "\n" + fuzzSync[:10],
	} {
		f.Add([]byte(s), true)
	}
	f.Add([]byte("O 3\nabcX 0 exit\n"), false)
	f.Add([]byte("X 0 exit cpu=1.25 rss=52428800\n"), false)
	f.Add([]byte("X 137 timeout utime=0m1.020000s stime=0m0.010000s\n"), false)
	f.Add([]byte("D"), false)
	f.Fuzz(func(t *testing.T, in []byte, withSync bool) {
		sync := ""
		if withSync {
			sync = fuzzSync
		}
		// follow: stream, then the result.
		var out, errOut bytes.Buffer
		r := &remoteRun{stdout: &out, stderr: &errOut}
		x, err := r.stream(newFrameReader(bytes.NewReader(in), sync))
		checkFrameErr(t, "stream", err)
		if err == nil {
			if x.kind != 'X' || len(x.args) < 2 {
				t.Fatalf("stream ended on %q %q", x.kind, x.args)
			}
			r.finish(x)
			res := r.res
			if res.TimedOut && res.Cancelled || res.Signal != "" && !res.Exited {
				t.Fatalf("result %+v", res)
			}
			_ = res.Describe()
			if c := res.Cost; c.CPUSeconds < 0 || c.CPUSeconds >= 1e12 || c.PeakMemoryBytes < 0 || (c.Measured() != (c.Source != "")) {
				t.Fatalf("cost %+v", c)
			}
		}
		if out.Len()+errOut.Len() > len(in) {
			t.Fatalf("%d bytes of output from %d of input", out.Len()+errOut.Len(), len(in))
		}

		// Short steps: frames up to D, without payloads.
		frames, _ := readStep(newFrameReader(bytes.NewReader(in), sync))
		for _, fr := range frames {
			if strings.IndexByte("OEDF", fr.kind) >= 0 {
				t.Fatalf("readStep returned a %q frame", fr.kind)
			}
		}
		names := unowned(frames, func(string) bool { return false })
		for _, n := range names {
			if !spoolName.MatchString(n) {
				t.Fatalf("unowned picked %q", n)
			}
		}

		// Every frame in turn, payloads included.
		fr := newFrameReader(bytes.NewReader(in), sync)
		for i := 0; ; i++ {
			if i > len(in) {
				t.Fatal("more frames than input bytes")
			}
			h, err := fr.next()
			if err != nil {
				checkFrameErr(t, "next", err)
				break
			}
			checkFrame(t, h)
			if h.kind == 'O' || h.kind == 'E' {
				var b bytes.Buffer
				k, err := fr.payload(&b, h.n)
				if k != int64(b.Len()) || k > h.n || err == nil && k != h.n || err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("payload of %d: %d bytes, %v", h.n, k, err)
				}
				if err != nil {
					break
				}
			}
		}
	})
}

func checkFrameErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrRemote) {
		t.Fatalf("%s: unclassified error %v", what, err)
	}
}

func checkFrame(t *testing.T, h frame) {
	t.Helper()
	switch h.kind {
	case 'O', 'E':
		if len(h.args) != 1 || h.n < 0 || h.args[0] == "" {
			t.Fatalf("frame %q %q n=%d", h.kind, h.args, h.n)
		}
	case 'F':
		if len(h.args) != 1 || h.args[0] != strings.TrimSpace(h.args[0]) {
			t.Fatalf("F frame %q", h.args)
		}
	case 'A', 'N', 'H', 'X', 'S', 'D', 'C', 'R':
		for _, a := range h.args {
			if a == "" || strings.ContainsAny(a, " \t\n") {
				t.Fatalf("frame %q arg %q", h.kind, a)
			}
		}
	default:
		t.Fatalf("frame kind %q", h.kind)
	}
}

// wireFrame is a frame as remote.sh prints it.
type wireFrame struct {
	kind    byte
	args    []string
	payload []byte
}

// encodeFrames writes frames the way remote.sh does: a header line, then
// for O and E exactly n bytes of payload.
func encodeFrames(frames []wireFrame) []byte {
	var b bytes.Buffer
	for _, f := range frames {
		switch f.kind {
		case 'O', 'E':
			fmt.Fprintf(&b, "%c %d\n", f.kind, len(f.payload))
			b.Write(f.payload)
		case 'F':
			fmt.Fprintf(&b, "F %s\n", f.args[0])
		default:
			b.WriteByte(f.kind)
			for _, a := range f.args {
				b.WriteString(" " + a)
			}
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// FuzzFrameRoundTrip builds a frame sequence from the fuzzer's bytes,
// encodes it as remote.sh would behind login-shell noise, and reads it
// back: the same frames and payloads come out, then EOF.
func FuzzFrameRoundTrip(f *testing.F) {
	f.Add([]byte(""), []byte("hello\nworld"), "/tmp/cronium-1.e.abc 3", []byte{0x0a, 0x33, 0x04, 0x06, 0x17})
	f.Add([]byte("Welcome to Ubuntu\nLast login: today\n"), []byte("\x00\xff\r\n"), "137 exit", []byte{0x03, 0x14, 0x25, 0x36})
	f.Add([]byte("no final newline "), []byte(strings.Repeat("y", 300)), "  F  message with  spaces ", []byte{0x02, 0xf3, 0xf4, 0x08})
	f.Add([]byte("\r\n\r\n"), []byte{}, "", []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	const kinds = "ANFOEHXSCRD"
	f.Fuzz(func(t *testing.T, noise, payload []byte, words string, steps []byte) {
		if bytes.Contains(noise, []byte("cronium-sync")) || len(noise) > maxNoise-len(fuzzSync) {
			return // the real token is random: noise cannot hold it
		}
		fields := strings.Fields(words)
		message := strings.TrimSpace(strings.NewReplacer("\n", " ", "\r", " ").Replace(words))
		var frames []wireFrame
		for _, s := range steps {
			w := wireFrame{kind: kinds[int(s)%len(kinds)]}
			switch w.kind {
			case 'O', 'E':
				n := min(int(s>>4)*7, len(payload))
				w.payload, payload = payload[:n], payload[n:]
			case 'F':
				w.args = []string{message}
			default:
				w.args = fields[:min(int(s>>4), len(fields))]
			}
			frames = append(frames, w)
		}
		body := encodeFrames(frames)
		in := append(append(bytes.Clone(noise), fuzzSync+"\n"...), body...)
		fr := newFrameReader(bytes.NewReader(in), fuzzSync)
		for i, w := range frames {
			h, err := fr.next()
			if err != nil {
				if w.kind == 'F' && len(message) > maxHeader || len(strings.Join(w.args, " ")) > maxHeader {
					return // a header beyond the bound is refused, as it should be
				}
				t.Fatalf("frame %d (%q): %v\n%q", i, w.kind, err, in)
			}
			if h.kind != w.kind {
				t.Fatalf("frame %d: kind %q, want %q", i, h.kind, w.kind)
			}
			switch w.kind {
			case 'O', 'E':
				var b bytes.Buffer
				if k, err := fr.payload(&b, h.n); err != nil || k != int64(len(w.payload)) || !bytes.Equal(b.Bytes(), w.payload) {
					t.Fatalf("frame %d payload %q (%v), want %q", i, b.Bytes(), err, w.payload)
				}
				if h.args[0] != strconv.Itoa(len(w.payload)) {
					t.Fatalf("frame %d args %q", i, h.args)
				}
			default:
				if strings.Join(h.args, "\x00") != strings.Join(w.args, "\x00") {
					t.Fatalf("frame %d (%q): args %q, want %q", i, w.kind, h.args, w.args)
				}
			}
		}
		if h, err := fr.next(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the last frame: %q %v", h.kind, err)
		}
	})
}
