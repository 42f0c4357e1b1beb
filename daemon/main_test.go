package daemon

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// TestMain keeps hollywood's own logging (it logs crashes through
// slog.Default) out of test output unless TEST_LOGS is set.
func TestMain(m *testing.M) {
	if os.Getenv("TEST_LOGS") == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	os.Exit(m.Run())
}
