package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// Docker returns a client for the daemon named by DOCKER_HOST (or the
// default socket) after pinging it, and closes it when the test ends. It
// skips the test, or fails it in CI, when no daemon answers.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		Unavailable(t, "docker client: %v", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		_ = cli.Close()
		Unavailable(t, "docker daemon not reachable: %v", err)
		return nil
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}
