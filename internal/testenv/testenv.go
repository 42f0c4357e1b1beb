// Package testenv lets tests that need real peers (dockerd, sshd,
// prometheus, chromium) skip on a developer machine that lacks them and
// fail in CI, where a missing peer is a broken setup, not a reason to pass.
package testenv

import (
	"os"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI (the CI variable is set).
func InCI() bool { return os.Getenv("CI") != "" }

// Unavailable skips the test, or fails it in CI, because something it needs
// is missing.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("required test dependency missing in CI: "+format, args...)
	}
	t.Skipf("skipped, dependency missing (make test installs it): "+format, args...)
}

// Patience bounds how long a test waits for something that does happen
// (a job to finish, a process to start, an actor to answer): generous,
// because a loaded CI machine can take seconds for what takes
// milliseconds on a quiet one, and free, because the wait ends as soon as
// the thing happens. A test that runs out of it is stuck, not slow.
const Patience = 2 * time.Minute

// Eventually waits until ok holds, checking every 10ms, and fails the test
// if it does not within the given time: tests wait on outcomes, not sleeps.
func Eventually(t testing.TB, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Settle returns once actors have nothing left to do, so that a test can
// assert that something did not happen: whatever could still have made it
// happen has run. calls reports the background calls the actors started
// and ended so far (kit.Calls); flush must return only once the actors
// have handled every message sent to them before it was called (a
// request they answer, a probe their observer reports handled).
//
// Settled means: no call was in flight, flush then found every message
// handled, and handling them started no new call. Messages from outside
// the actors and their calls (the test's own, a fake clock's timers) must
// be sent before Settle; wall-clock timers must not be due meanwhile.
func Settle(t testing.TB, calls func() (started, ended int64), flush func()) {
	t.Helper()
	deadline := time.Now().Add(Patience)
	for {
		if started, ended := calls(); started == ended {
			flush()
			if again, _ := calls(); again == started {
				return
			}
		}
		if time.Now().After(deadline) {
			started, ended := calls()
			t.Fatalf("actors still busy after %s: %d background calls started, %d ended", Patience, started, ended)
		}
		time.Sleep(time.Millisecond)
	}
}

// Idle waits until every background call (calls: started and ended so
// far, kit.Calls) has ended: after the actors that started them stopped,
// nothing they did can still reach anything.
func Idle(t testing.TB, calls func() (started, ended int64)) {
	t.Helper()
	Eventually(t, Patience, "the actors' background calls to end", func() bool {
		started, ended := calls()
		return started == ended
	})
}
