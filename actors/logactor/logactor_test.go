package logactor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/mask"
	"github.com/cronium/orchestrator/messages"
	"github.com/cronium/orchestrator/output"
)

// recorder records execution updates; gate, when set, holds each update
// until released, to test ordering, and arrived then tells when an update
// reached the gate.
type recorder struct {
	mu      sync.Mutex
	updates []backend.ExecutionUpdate
	gate    chan struct{}
	arrived chan struct{}
}

func (r *recorder) UpdateExecution(_ context.Context, _ string, u backend.ExecutionUpdate) error {
	if r.gate != nil {
		r.arrived <- struct{}{}
		<-r.gate
	}
	if u.IsTerminal() {
		return fmt.Errorf("terminal update sent")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, u)
	return nil
}

func (r *recorder) snapshot() []backend.ExecutionUpdate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]backend.ExecutionUpdate(nil), r.updates...)
}

type harness struct {
	t       *testing.T
	engine  *actor.Engine
	pid     *actor.PID
	clock   *kit.FakeClock
	rec     *recorder
	out     *output.Log
	obs     *observer
	kept    *keeper
	done    chan struct{}
	flushed chan struct{}
}

// flush is a message the log actor ignores; kit's middleware reports it
// handled to the actor's observer, like every message.
type flush struct{}

// flushes tells when the actor it observes has handled a flush.
type flushes chan struct{}

func (f flushes) MessageHandled(_, msgType string, _, _ time.Duration) {
	if msgType == "flush" {
		f <- struct{}{}
	}
}

// flush returns once the log actor has handled everything sent to it
// before: hollywood handles an actor's messages in the order they were
// sent.
func (h *harness) flush() {
	h.t.Helper()
	kit.Send(h.engine, h.pid, flush{})
	select {
	case <-h.flushed:
	case <-time.After(testenv.Patience):
		h.t.Fatal("the log actor did not handle a flush")
	}
}

func start(t *testing.T, gated bool) *harness {
	t.Helper()
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, engine: engine, clock: kit.NewFakeClock(time.Unix(0, 0)), rec: &recorder{},
		obs: &observer{}, kept: &keeper{}, done: make(chan struct{}, 4), flushed: make(chan struct{}, 1)}
	if gated {
		h.rec.gate, h.rec.arrived = make(chan struct{}), make(chan struct{}, 4)
	}
	var pid *actor.PID
	h.out = output.New(1<<20, 0, func() { kit.Send(engine, pid, messages.OutputAvailable{}) })
	deps := Deps{Updater: h.rec, Clock: h.clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Observer: h.obs, Keeper: h.kept, Settings: Settings{BatchLines: 3, BatchBytes: 1000, BatchInterval: time.Second}}
	st := NewState("job1", h.out, func() []string { return []string{"exec1"} })
	pid = engine.Spawn(New(st, deps), "log", kit.SpawnOpts("log", "job1", flushes(h.flushed))...)
	h.pid = pid
	t.Cleanup(func() {
		if h.rec.gate != nil {
			close(h.rec.gate)
		}
		<-engine.Poison(pid).Done()
		testenv.Idle(t, kit.Calls) // an update in flight ends too
	})
	return h
}

// expectUpdates waits until n updates were shipped, lets the log actor
// settle (every update's end handled, and whatever update that started
// shipped and handled too), and checks that exactly n were shipped: time
// moves only with the fake clock, so a settled log actor ships again only
// when told (new output, the clock, the final update).
func (h *harness) expectUpdates(n int) []backend.ExecutionUpdate {
	h.t.Helper()
	testenv.Eventually(h.t, testenv.Patience, fmt.Sprintf("%d updates", n), func() bool {
		return len(h.rec.snapshot()) >= n
	})
	testenv.Settle(h.t, kit.Calls, h.flush)
	got := h.rec.snapshot()
	if len(got) != n {
		h.t.Fatalf("%d updates, want %d", len(got), n)
	}
	return got
}

// keeper holds the last output kept.
type keeper struct {
	mu   sync.Mutex
	last output.Kept
}

func (k *keeper) SaveOutput(_ string, kept output.Kept) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.last = kept
	return nil
}

func (k *keeper) stdout() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return string(k.last.Streams[output.Stdout].Head) + string(k.last.Streams[output.Stdout].Tail)
}

// observer counts the secrets masked in what was shipped.
type observer struct {
	mu     sync.Mutex
	masked int
}

func (o *observer) OutputShipped(int64, int64, int64) {}

func (o *observer) OutputMasked(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.masked += n
}

func (o *observer) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.masked
}

// Every snapshot holds all the output so far, masked; a secret is counted
// once, in the first snapshot that shows it.
func TestSnapshotsAreMaskedAndCountedOnce(t *testing.T) {
	h := start(t, false)
	h.out.SetMasker(mask.New("hunter22"))
	w := h.out.Writer(output.Stdout)
	fmt.Fprint(w, "pw hun")
	fmt.Fprint(w, "ter22\nb\nc\n") // 3 lines: ship at once
	if u := h.expectUpdates(1); *u[0].Output != "pw [MASKED]\nb\nc\n" {
		t.Fatalf("snapshot %q", *u[0].Output)
	}
	fmt.Fprint(w, "d\ne\nf\n")
	h.expectUpdates(2)
	if n := h.obs.count(); n != 1 {
		t.Fatalf("%d masked after a second snapshot showing the same secret, want 1", n)
	}
	fmt.Fprint(w, "again hunter22\ng\nh\n")
	if u := h.expectUpdates(3); *u[2].Output != "pw [MASKED]\nb\nc\nd\ne\nf\nagain [MASKED]\ng\nh\n" {
		t.Fatalf("snapshot %q", *u[2].Output)
	}
	if n := h.obs.count(); n != 2 {
		t.Fatalf("%d masked, want 2", n)
	}
}

func TestBatchesByLinesAndTime(t *testing.T) {
	h := start(t, false)
	h.expectUpdates(0)
	fmt.Fprint(h.out.Writer(output.Stdout), "a\nb\n") // 2 lines: below every threshold
	h.expectUpdates(0)
	h.clock.Advance(time.Second) // ...until the interval passes
	if u := h.expectUpdates(1); *u[0].Output != "a\nb\n" || u[0].ExitCode != nil {
		t.Fatalf("snapshot %+v", u[0])
	}
	fmt.Fprint(h.out.Writer(output.Stdout), "c\nd\ne\n") // 3 lines: ship at once
	if u := h.expectUpdates(2); *u[1].Output != "a\nb\nc\nd\ne\n" {
		t.Fatalf("snapshot %q", *u[1].Output)
	}
	h.clock.Advance(time.Hour) // nothing new: nothing shipped
	h.expectUpdates(2)
}

func TestBatchesByBytes(t *testing.T) {
	h := start(t, false)
	fmt.Fprint(h.out.Writer(output.Stderr), string(make([]byte, 999)))
	h.expectUpdates(0)
	fmt.Fprint(h.out.Writer(output.Stderr), "x")
	if u := h.expectUpdates(1); u[0].Error == nil || len(*u[0].Error) != 1000 {
		t.Fatalf("stderr snapshot %+v", u[0])
	}
}

// The final update waits for the snapshot in flight and is the last one:
// a late snapshot cannot overwrite it.
func TestFinalUpdateComesLast(t *testing.T) {
	h := start(t, true)
	replies := h.engine.SpawnFunc(func(c *actor.Context) {
		if _, ok := kit.Message(c).(messages.OutputFinalized); ok {
			h.done <- struct{}{}
		}
	}, "job")
	t.Cleanup(func() { <-h.engine.Poison(replies).Done() })
	fmt.Fprint(h.out.Writer(output.Stdout), "1\n2\n3\n") // a snapshot starts, held at the gate
	h.arrive("the snapshot")                             // taken: "4" is not in it
	fmt.Fprint(h.out.Writer(output.Stdout), "4\n")
	kit.Send(h.engine, h.pid, messages.FinalizeOutput{ExitCode: 3, Reason: "exited with code 3",
		Result: executors.Result{Exited: true, ExitCode: 3}, ReplyTo: replies})
	h.rec.gate <- struct{}{} // release the snapshot
	h.arrive("the final update")
	h.rec.gate <- struct{}{} // release the final update
	select {
	case <-h.done:
	case <-time.After(testenv.Patience):
		t.Fatal("no OutputFinalized")
	}
	u := h.expectUpdates(2)
	last := u[1]
	if last.ExitCode == nil || *last.ExitCode != 3 || *last.Output != "1\n2\n3\n4\n" ||
		*last.Error != "[cronium] exited with code 3\n" {
		t.Fatalf("final update %+v", last)
	}
}

// arrive waits until an update reached the recorder's gate.
func (h *harness) arrive(what string) {
	h.t.Helper()
	select {
	case <-h.rec.arrived:
	case <-time.After(testenv.Patience):
		h.t.Fatalf("%s did not reach the backend", what)
	}
}

// A server of a multi-server job whose own stderr is empty still gets an
// empty error in its final update, replacing the combined stderr an
// earlier snapshot put there.
func TestFinalUpdateOfAServerClearsTheCombinedStderr(t *testing.T) {
	snap := output.Snapshot{Stdout: "[a] fine\n", Stderr: "[b] failing\n"}
	fin := messages.FinalizeOutput{ExitCode: 101, Result: executors.Result{Servers: []executors.ServerResult{
		{Stdout: "fine\n", Result: executors.Result{Exited: true}},
		{Stderr: "failing\n", Result: executors.Result{Exited: true, ExitCode: 4, Reason: "exited with code 4"}},
	}}}
	a, b := finalUpdate(snap, fin, 0, nil), finalUpdate(snap, fin, 1, nil)
	if *a.Output != "fine\n" || a.Error == nil || *a.Error != "" || *a.ExitCode != 0 {
		t.Fatalf("server a: output %q error %v exit %d", *a.Output, a.Error, *a.ExitCode)
	}
	if *b.Error != "failing\n[cronium] exited with code 4\n" || *b.ExitCode != 4 {
		t.Fatalf("server b: error %q exit %d", *b.Error, *b.ExitCode)
	}
}

// A server's own output comes from the executor, not from the (masked)
// snapshot: the final update masks it, and the reason.
func TestFinalUpdateOfAServerIsMasked(t *testing.T) {
	m := mask.New("hunter22")
	snap := output.Snapshot{Stdout: "[a] pw [MASKED]\n"}
	fin := messages.FinalizeOutput{ExitCode: 101, Result: executors.Result{Servers: []executors.ServerResult{
		{Stdout: "pw hunter22\n", Stderr: "hunter22?\n", Result: executors.Result{Exited: true, ExitCode: 1,
			Reason: "auth hunter22 refused"}},
		{Result: executors.Result{Exited: true}},
	}}}
	u := finalUpdate(snap, fin, 0, m)
	if *u.Output != "pw [MASKED]\n" || *u.Error != "[MASKED]?\n[cronium] auth [MASKED] refused\n" {
		t.Fatalf("output %q error %q", *u.Output, *u.Error)
	}
}

func TestKeepDue(t *testing.T) {
	const mb = 1 << 20
	tests := []struct {
		name       string
		seen, kept int64
		want       bool
	}{
		{"small output, every snapshot", 1000, 900, true},
		{"just below the small size", keepSmall - 1, keepSmall - 2, true},
		{"large, not yet doubled", 3 * mb, 2 * mb, false},
		{"large, doubled", 4 * mb, 2 * mb, true},
		{"large, never kept", 50 * mb, 0, true},
		{"after a reset", 10, 0, true},
	}
	for _, tt := range tests {
		if got := keepDue(tt.seen, tt.kept); got != tt.want {
			t.Errorf("%s: keepDue(%d, %d) = %v, want %v", tt.name, tt.seen, tt.kept, got, tt.want)
		}
	}
}

func TestSnapshotDue(t *testing.T) {
	s := Settings{BatchLines: 1000, BatchBytes: 64 << 10, BatchInterval: time.Second}
	const mb = 1 << 20
	tests := []struct {
		name string
		u    unshipped
		due  bool
		wait time.Duration
	}{
		{"below every threshold", unshipped{lines: 2, bytes: 4, age: 300 * time.Millisecond, sinceShipped: time.Hour},
			false, 700 * time.Millisecond},
		{"the interval passed", unshipped{lines: 2, bytes: 4, age: time.Second, sinceShipped: time.Hour}, true, 0},
		{"enough lines", unshipped{lines: 1000, bytes: 4000, sinceShipped: time.Hour}, true, 0},
		{"enough bytes", unshipped{lines: 1, bytes: 64 << 10, sinceShipped: time.Hour}, true, 0},
		{"small output is not paced", unshipped{lines: 1000, bytes: 1, shippedBytes: 3 * mb}, true, 0},
		{"large output paced", unshipped{lines: 1000, bytes: mb, shippedBytes: 20 * mb, sinceShipped: 2 * time.Second},
			false, 3 * time.Second},
		{"large output, its pace passed", unshipped{lines: 1000, bytes: mb, shippedBytes: 20 * mb, sinceShipped: 5 * time.Second},
			true, 0},
		{"pace longer than the interval's wait", unshipped{lines: 1, bytes: 1, age: 0, shippedBytes: 12 * mb, sinceShipped: time.Second},
			false, 2 * time.Second},
	}
	for _, tt := range tests {
		due, wait := snapshotDue(tt.u, s)
		if due != tt.due || !due && wait != tt.wait {
			t.Errorf("%s: snapshotDue = %v, %v; want %v, %v", tt.name, due, wait, tt.due, tt.wait)
		}
	}
}

// Pacing weighs what a snapshot holds, not all the job printed: with the
// size cap, a chatty job's snapshots stay small and ship on their
// thresholds.
func TestCappedOutputIsNotPaced(t *testing.T) {
	h := start(t, false) // the log keeps 1 MiB per stream
	line := strings.Repeat("x", 99) + "\n"
	w := h.out.Writer(output.Stdout)
	for range 100_000 { // 10 MB printed
		io.WriteString(w, line)
	}
	testenv.Eventually(t, testenv.Patience, "a snapshot", func() bool { return len(h.rec.snapshot()) > 0 })
	testenv.Settle(t, kit.Calls, h.flush)
	n := len(h.rec.snapshot())
	io.WriteString(w, line+line+line) // 3 lines: a threshold
	h.expectUpdates(n + 1)
}

// A retry starts from no kept output: the last attempt's, restored after
// a restart, would make the next attempt's output skipped by its length.
func TestResetClearsTheKeptOutput(t *testing.T) {
	h := start(t, false)
	fmt.Fprint(h.out.Writer(output.Stdout), "a\nb\nc\n")
	h.expectUpdates(1)
	if got := h.kept.stdout(); got != "a\nb\nc\n" {
		t.Fatalf("kept %q after the first snapshot", got)
	}
	reset := make(chan struct{}, 1)
	replies := h.engine.SpawnFunc(func(c *actor.Context) {
		if _, ok := kit.Message(c).(messages.OutputReset); ok {
			reset <- struct{}{}
		}
	}, "replies")
	kit.Send(h.engine, h.pid, messages.ResetOutput{ReplyTo: replies})
	select {
	case <-reset:
	case <-time.After(testenv.Patience):
		t.Fatal("no OutputReset")
	}
	if got := h.kept.stdout(); got != "" {
		t.Errorf("kept %q after the reset", got)
	}
}
