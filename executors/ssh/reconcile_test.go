package ssh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
)

// TestRemoveDanglingSpools: an ended spool no job owns is removed, and so
// is one whose wrapper died (its job is stopped first); a running job's
// spool stays, and so do owned ones (of a multi-server job too: the owner
// is the execution the job knows), another orchestrator's, and one without
// an owner.
func TestRemoveDanglingSpools(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := danglingExecutor(t, s, danglingID("orch"))
	other := danglingExecutor(t, s, danglingID("other-orch"))
	anonymous := danglingExecutor(t, s, "")
	flag := "/tmp/" + danglingID("end")
	waits := `echo start; while [ ! -e ` + flag + ` ]; do sleep 0.1; done`

	ended := detachStarted(t, e, bashSpec(t, waits, keyServer(s)))
	owned := detachStarted(t, e, bashSpec(t, waits, keyServer(s)))
	ownedMulti := detachStarted(t, e, bashSpec(t, waits, multiServers(s, "a", "b")...))
	lost := detachStarted(t, e, bashSpec(t, "echo start; sleep 701", keyServer(s)))
	running := detachStarted(t, e, bashSpec(t, "echo start; sleep 702", keyServer(s)))
	theirs := detachStarted(t, other, bashSpec(t, waits, keyServer(s)))
	nobodys := detachStarted(t, anonymous, bashSpec(t, waits, keyServer(s)))
	t.Cleanup(func() {
		for _, a := range []struct {
			e    *Executor
			spec executors.Spec
		}{{e, owned}, {e, ownedMulti}, {e, lost}, {e, running}, {other, theirs}, {anonymous, nobodys}} {
			_ = a.e.Abandon(context.Background(), a.spec)
		}
	})

	remote(t, s, "touch "+flag)
	for _, spec := range []executors.Spec{ended, owned, ownedMulti, theirs, nobodys} {
		awaitEnded(t, s, spec)
	}
	wrapper := `pgrep -u cronium -f 'cronium-` + spoolTag(lost.JobID, lost.ExecutionID) + `.*/lib.sh wrap' || true`
	remote(t, s, "kill -KILL "+strings.TrimSpace(remote(t, s, wrapper)))
	testenv.Eventually(t, testenv.Patience, "the wrapper to die", func() bool {
		return strings.TrimSpace(remote(t, s, wrapper)) == ""
	})

	owners := func() (func(string) bool, error) {
		return func(id string) bool { return id == owned.ExecutionID || id == ownedMulti.ExecutionID }, nil
	}
	n, err := e.RemoveDangling(t.Context(), owners)
	if err != nil || n != 2 {
		t.Fatalf("RemoveDangling = %d, %v; want 2 removed", n, err)
	}
	assertNoSpool(t, s, ended)
	assertNoSpool(t, s, lost)
	if out := remote(t, s, "pgrep -u cronium -f 'sleep 701' || true"); strings.TrimSpace(out) != "" {
		t.Errorf("the lost wrapper's job still runs: %s", out)
	}
	for name, spec := range map[string]executors.Spec{"owned": owned, "owned multi-server": ownedMulti,
		"running": running, "another orchestrator's": theirs, "ownerless": nobodys} {
		if missing := spoolsMissing(t, s, spec); len(missing) > 0 {
			t.Errorf("the %s spool was removed: %v", name, missing)
		}
	}
	if out := remote(t, s, "pgrep -u cronium -f 'sleep 702' || true"); strings.TrimSpace(out) == "" {
		t.Error("the running job was stopped")
	}

	if n, err := e.RemoveDangling(t.Context(), owners); err != nil || n != 0 {
		t.Fatalf("second pass = %d, %v; want nothing left to remove", n, err)
	}
	failing := func() (func(string) bool, error) { return nil, errors.New("journal unreadable") }
	if n, err := e.RemoveDangling(t.Context(), failing); err == nil || n != 0 {
		t.Fatalf("with unreadable owners = %d, %v; want the error and nothing removed", n, err)
	}
	if missing := spoolsMissing(t, s, owned); len(missing) > 0 {
		t.Errorf("removed with unreadable owners: %v", missing)
	}
}

// TestRemoveDanglingUsesOpenConnectionsOnly: without a connection to any
// server there is nothing to look at, and the owners are not read; with
// one, a pass takes a slot on it without counting as use, so that the
// connection still closes when it has been idle long enough.
func TestRemoveDanglingUsesOpenConnectionsOnly(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	obs := &slotCounter{}
	opts := danglingOptions(t, s, danglingID("orch"))
	opts.Observer = obs
	e := newExecutor(t, opts)
	read := false
	owners := func() (func(string) bool, error) { read = true; return func(string) bool { return false }, nil }
	if n, err := e.RemoveDangling(t.Context(), owners); err != nil || n != 0 || read {
		t.Fatalf("without connections: %d, %v, owners read %v; want nothing done", n, err, read)
	}

	if res, _, err := run(t, e, bashSpec(t, "true", keyServer(s))); err != nil || !res.Succeeded() {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	since := idleSince(t, e)
	before := obs.taken.Load()
	if n, err := e.RemoveDangling(t.Context(), owners); err != nil || n != 0 {
		t.Fatalf("RemoveDangling = %d, %v", n, err)
	}
	if got := obs.taken.Load() - before; got != 1 {
		t.Fatalf("the pass took %d slots, want 1 on the open connection", got)
	}
	if after := idleSince(t, e); !after.Equal(since) {
		t.Errorf("the pass moved the connection's idle clock from %s to %s", since, after)
	}
}

func TestRemoveDanglingNeedsAnOrchestratorID(t *testing.T) {
	t.Parallel()
	e := newExecutor(t, testOptions(t, nil))
	if _, err := e.RemoveDangling(t.Context(), nil); err == nil {
		t.Fatal("RemoveDangling without an orchestrator id did not refuse")
	}
}

func TestUnowned(t *testing.T) {
	hexOf := func(s string) string { return ownerVars("o", s)[1][1] }
	listed := []frame{
		{kind: 'C', args: []string{"cronium-j.e1.AbC123", hexOf("e1")}},
		{kind: 'C', args: []string{"cronium-j.e2.AbC123", hexOf("e2")}},
		{kind: 'C', args: []string{"cronium-j.e3.AbC123", "not hex"}},
		{kind: 'C', args: []string{"../etc", hexOf("e4")}},
		{kind: 'C', args: []string{"cronium-j.e5.AbC123"}},
		{kind: 'R', args: []string{"cronium-j.e6.AbC123"}},
	}
	got := unowned(listed, func(id string) bool { return id == "e2" })
	if len(got) != 1 || got[0] != "cronium-j.e1.AbC123" {
		t.Errorf("unowned = %q, want only the spool of e1", got)
	}
}

var danglingSeq atomic.Int64

func danglingID(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), danglingSeq.Add(1))
}

// danglingOptions are testOptions with an orchestrator id, and connections
// that stay pooled however slowly the test runs.
func danglingOptions(t *testing.T, s *testenv.SSHD, orch string) Options {
	opts := testOptions(t, s)
	opts.OrchestratorID = orch
	opts.IdleTimeout = time.Hour
	return opts
}

func danglingExecutor(t *testing.T, s *testenv.SSHD, orch string) *Executor {
	return newExecutor(t, danglingOptions(t, s, orch))
}

// detachStarted runs spec until each of its servers printed a line, then
// detaches: the job keeps running, its spool stays.
func detachStarted(t *testing.T, e *Executor, spec executors.Spec) executors.Spec {
	t.Helper()
	var c capture
	o := runUntil(t, e, spec, &c, func() bool { return strings.Count(c.stdout.String(), "start") == len(spec.Servers) },
		func(cancel context.CancelCauseFunc) { cancel(executors.ErrDetached) })
	if !errors.Is(o.err, executors.ErrDetached) {
		t.Fatalf("err = %v, want ErrDetached", o.err)
	}
	return spec
}

// spoolGlobs are the paths of spec's spools on the test server, a glob per
// server.
func spoolGlobs(spec executors.Spec) []string {
	if len(spec.Servers) <= 1 {
		return []string{"/tmp/cronium-" + spoolTag(spec.JobID, spec.ExecutionID) + ".*"}
	}
	var globs []string
	for i := range spec.Servers {
		globs = append(globs, "/tmp/cronium-"+spoolTag(spec.JobID, executors.ServerExecutionID(spec.ExecutionID, i))+".*")
	}
	return globs
}

// awaitEnded waits until every spool of spec holds its job's exit status.
func awaitEnded(t *testing.T, s interface{ Exec(string) (string, error) }, spec executors.Spec) {
	t.Helper()
	for _, g := range spoolGlobs(spec) {
		testenv.Eventually(t, testenv.Patience, "the job to end", func() bool {
			_, err := s.Exec("test -f " + g + "/status")
			return err == nil
		})
	}
}

// spoolsMissing lists spec's spools that are gone from the test server.
func spoolsMissing(t *testing.T, s interface{ Exec(string) (string, error) }, spec executors.Spec) []string {
	t.Helper()
	var missing []string
	for _, g := range spoolGlobs(spec) {
		if _, err := s.Exec("test -d " + g); err != nil {
			missing = append(missing, g)
		}
	}
	return missing
}

// idleSince is the idle clock of e's only connection.
func idleSince(t *testing.T, e *Executor) time.Time {
	t.Helper()
	p := e.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	var conns []*conn
	for _, en := range p.entries {
		conns = append(conns, en.conns...)
	}
	if len(conns) != 1 || conns[0].idleSince.IsZero() {
		t.Fatalf("want one idle connection, have %d", len(conns))
	}
	return conns[0].idleSince
}

// slotCounter counts the slots taken on pooled connections.
type slotCounter struct {
	nopObserver
	taken atomic.Int32
}

func (c *slotCounter) Sessions(_ string, delta int) {
	if delta > 0 {
		c.taken.Add(1)
	}
}
