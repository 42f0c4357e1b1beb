// Package daemontest is what tests that run a whole daemon share: the
// embedded backend served over real HTTP and a configuration with short
// intervals. It does not import the daemon, so the daemon's own tests can
// use it too.
package daemontest

import (
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/secret"
)

// Backend starts an embedded backend on a real HTTP listener, with a
// store in a temporary directory; both go when the test ends. It returns
// the store (to submit jobs and read them back), the backend's URL and
// its internal API token.
func Backend(t testing.TB) (*embedded.Store, string, secret.Value) {
	t.Helper()
	store, err := embedded.Open(filepath.Join(t.TempDir(), "cronium.db"))
	if err != nil {
		t.Fatal(err)
	}
	token := secret.Value("test-token-" + t.Name())
	srv := httptest.NewServer(embedded.NewServer(store, embedded.ServerOptions{Token: token}))
	t.Cleanup(func() { srv.Close(); store.Close() })
	return store, srv.URL, token
}

// Config is the default configuration against the backend at url, with
// polling, flushing, backoff and shutdown intervals short enough for
// tests, a state directory of the test's own, and both listeners off;
// opts adjust it further.
func Config(t testing.TB, url string, token secret.Value, opts ...func(*config.Config)) config.Config {
	cfg := config.Default()
	cfg.API.URL = url
	cfg.API.Token = token
	cfg.API.RetryMaxElapsed = 5 * time.Second
	cfg.Orchestrator.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Jobs.PollInterval = 50 * time.Millisecond
	cfg.Jobs.CancelCheckInterval = 100 * time.Millisecond
	cfg.Jobs.ShutdownGrace = 2 * time.Second
	cfg.Jobs.StopGrace = time.Second
	cfg.Logs.BatchInterval = 100 * time.Millisecond
	cfg.Supervisor.BackoffInitial = 50 * time.Millisecond
	cfg.Supervisor.BackoffMax = 200 * time.Millisecond
	cfg.HTTP.Listen, cfg.Admin.Listen = "", ""
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// Listeners puts http.listen and admin.listen on free loopback ports.
func Listeners(c *config.Config) { c.HTTP.Listen, c.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0" }
