// Package testenv lets tests that need real peers (dockerd, sshd,
// prometheus, chromium) skip on a developer machine that lacks them and
// fail in CI, where a missing peer is a broken setup, not a reason to pass.
package testenv

import (
	"os"
	"testing"
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
