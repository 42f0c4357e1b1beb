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
