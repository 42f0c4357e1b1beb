package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/cronium/orchestrator/executors"
)

func TestErrorClassification(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		transient bool
	}{
		{"connection refused", &url.Error{Op: "Post", URL: "http://docker/x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, true},
		{"reset mid-stream", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"stream cut", io.ErrUnexpectedEOF, true},
		{"api timeout", context.DeadlineExceeded, true},
		{"daemon unavailable", cerrdefs.ErrUnavailable, true},
		{"image not found", fmt.Errorf("create: %w", cerrdefs.ErrNotFound), false},
		{"invalid config", cerrdefs.ErrInvalidArgument, false},
		{"runtime failure", cerrdefs.ErrInternal, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := transient(tt.err); got != tt.transient {
				t.Errorf("transient = %v, want %v", got, tt.transient)
			}
			if got := executors.IsRetryable(setupError(tt.err)); got != tt.transient {
				t.Errorf("setupError retryable = %v, want %v", got, tt.transient)
			}
		})
	}
	if err := runError("abc", cerrdefs.ErrNotFound); executors.IsRetryable(err) || !errors.Is(err, executors.ErrNotResumable) {
		t.Errorf("a vanished container: %v", err)
	}
	if err := runError("abc", io.ErrUnexpectedEOF); !executors.IsRetryable(err) {
		t.Errorf("a dropped stream must be retryable: %v", err)
	}
}
