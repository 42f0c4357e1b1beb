package daemon

import (
	"net"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/executors/fake"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
)

// A port already in use fails Start with an error naming the setting,
// before the actors exist: the queued job stays queued, and a listener
// bound before the failure is released.
func TestPortInUseFailsStartBeforeAnyJobIsClaimed(t *testing.T) {
	for _, setting := range []string{"http.listen", "admin.listen"} {
		t.Run(setting, func(t *testing.T) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			free := testenv.FreeAddr(t)
			store, url, token := daemontest.Backend(t)
			ctx := t.Context()
			id, err := store.Submit(ctx, bashJob("x", map[string]string{"FAKE_LINES": "1"}))
			if err != nil {
				t.Fatal(err)
			}
			cfg := daemontest.Config(t, url, token, func(c *config.Config) {
				c.HTTP.Listen, c.Admin.Listen = free, busy.Addr().String()
				if setting == "http.listen" {
					c.HTTP.Listen, c.Admin.Listen = busy.Addr().String(), free
				}
			})
			d, err := New(cfg, Options{Logger: testLogger(t),
				Executors: map[jobspec.Kind]executors.Executor{jobspec.KindContainer: fake.New()}})
			if err != nil {
				t.Fatal(err)
			}
			err = d.Start(ctx)
			if err == nil {
				_ = d.Shutdown()
				t.Fatalf("Start succeeded with %s on a port in use", setting)
			}
			if !strings.HasPrefix(err.Error(), setting+": ") || !strings.Contains(err.Error(), "address already in use") {
				t.Errorf("Start: %v, want an error naming %s", err, setting)
			}
			// Only the poller claims jobs, and it is an actor: with no
			// engine there is none, now or later.
			if d.Engine() != nil {
				t.Error("the actor engine was started")
			}
			if ln, err := net.Listen("tcp", free); err != nil {
				t.Errorf("%s is still bound after the failed start: %v", free, err)
			} else {
				ln.Close()
			}
			if v, err := store.Job(ctx, id); err != nil || v.Status != backend.StatusQueued {
				t.Errorf("the job is %q (%v), want it still queued", v.Status, err)
			}
		})
	}
}
