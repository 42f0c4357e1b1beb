package ssh

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/internal/testenv"
)

// The job's end wakes its follow: the X frame does not wait for the next
// poll. The follow here naps for ten minutes between polls; the job ends
// once the follow is seen napping, so only the wrapper's wake can bring
// the X frame before the test gives up (two minutes, however slow the
// machine).
func TestJobEndWakesTheFollow(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	gate := "/tmp/wake-gate-" + randomHex(6)
	script := "while [ ! -e " + gate + " ]; do sleep 0.05; done; echo woke"
	spec := bashSpec(t, script, keyServer(s))
	tag := spoolTag(spec.JobID, spec.ExecutionID)
	t.Cleanup(func() {
		e.Abandon(context.Background(), spec)
		_, _ = s.Exec("pkill -x -f 'sleep 611'; true")
	})
	l, err := e.pool.acquire(t.Context(), keyServer(s), false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()

	// Launch with the setup step alone: no follow of the executor's own.
	setup, err := l.newSession()
	if err != nil {
		t.Fatal(err)
	}
	vars, upload := setupUpload(e, tag, script)
	setup.Stdin = strings.NewReader(upload)
	cmd, sync := remoteCommand(vars, "setup")
	out, err := setup.Output(cmd)
	l.endSession(setup)
	if f, ferr := newFrameReader(bytes.NewReader(out), sync).next(); err != nil || ferr != nil || f.kind != 'S' {
		t.Fatalf("setup: %v, frame %q %v (%v)", err, f.kind, f.args, ferr)
	}

	sess, err := l.newSession()
	if err != nil {
		t.Fatal(err)
	}
	defer l.endSession(sess)
	stdin, _ := sess.StdinPipe()
	defer stdin.Close()
	stdout, _ := sess.StdoutPipe()
	cmd, sync = sleepyFollow(t, append(spoolVars(e.opts, tag), [2]string{"o", "0"}, [2]string{"e", "0"}))
	if err := sess.Start(cmd); err != nil {
		t.Fatal(err)
	}
	frames := make(chan frame, 16)
	go func() {
		defer close(frames)
		fr := newFrameReader(stdout, sync)
		for {
			f, err := fr.next()
			if err != nil {
				return
			}
			if f.kind == 'O' || f.kind == 'E' {
				if _, err := fr.payload(io.Discard, f.n); err != nil {
					return
				}
			}
			frames <- f
		}
	}()
	if f := <-frames; f.kind != 'A' {
		t.Fatalf("first frame %q %v", f.kind, f.args)
	}
	testenv.Eventually(t, testenv.Patience, "the follow to nap", func() bool {
		out, _ := s.Exec("pgrep -x -f 'sleep 611' >/dev/null && echo napping; true")
		return strings.Contains(out, "napping")
	})
	remote(t, s, "touch "+gate)
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("the follow ended without an end frame")
			}
			if f.kind != 'X' {
				continue
			}
			if len(f.args) < 2 || f.args[0] != "0" || f.args[1] != "exit" {
				t.Fatalf("end frame %v", f.args)
			}
			_, _ = io.WriteString(stdin, "done\n")
			return
		case <-timeout:
			t.Fatal("no end frame two minutes after the job ended: the follow was not woken")
		}
	}
}

// sleepyFollow is the follow step's command with every sleep made ten
// minutes long (and recognisable on the server as "sleep 611").
func sleepyFollow(t *testing.T, vars [][2]string) (cmd, sync string) {
	cmd, sync = remoteCommand(vars, "follow")
	m := commandRE.FindStringSubmatch(cmd)
	if m == nil {
		t.Fatalf("command line %.200q", cmd)
	}
	prog, err := base64.StdEncoding.DecodeString(m[2])
	if err != nil {
		t.Fatal(err)
	}
	p, ok := strings.CutSuffix(string(prog), "\"${1:-follow}\"\n")
	if !ok {
		t.Fatal("program does not end with the step")
	}
	p += "sleep() { command sleep 611; }\nfollow\n"
	return strings.Replace(cmd, m[2], base64.StdEncoding.EncodeToString([]byte(p)), 1), sync
}
