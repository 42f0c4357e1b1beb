package metrics_test

import (
	"slices"
	"testing"

	"github.com/cronium/orchestrator/actors/supervisor"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors/docker"
	"github.com/cronium/orchestrator/executors/ssh"
	"github.com/cronium/orchestrator/helpers"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/messages"
	"github.com/cronium/orchestrator/metrics"
)

// *Metrics is every observer the daemon wires.
var (
	_ supervisor.Observer = (*metrics.Metrics)(nil)
	_ backend.Observer    = (*metrics.Metrics)(nil)
	_ docker.Observer     = (*metrics.Metrics)(nil)
	_ ssh.Observer        = (*metrics.Metrics)(nil)
	_ helpers.Observer    = (*metrics.Metrics)(nil)
)

// The fixed label sets must follow the code they describe.
func TestLabelSetsMatchTheCode(t *testing.T) {
	kinds := []string{supervisor.KindSupervisor, supervisor.KindPoller, supervisor.KindJob, supervisor.KindLog}
	if !slices.Equal(kinds, messages.ActorKinds) {
		t.Errorf("messages.ActorKinds %v, supervisor has %v", messages.ActorKinds, kinds)
	}
	execs := []string{string(jobspec.KindContainer), string(jobspec.KindSSH), string(jobspec.KindHTTP)}
	if !slices.Equal(execs, metrics.Executors) {
		t.Errorf("Executors %v, jobspec has %v", metrics.Executors, execs)
	}
}
