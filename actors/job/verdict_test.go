package job

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cronium/orchestrator/executors"
)

func TestJudge(t *testing.T) {
	exited := func(code int) executors.Result { return executors.Result{Exited: true, ExitCode: code} }
	ok := executors.ServerResult{Result: exited(0)}
	bad := executors.ServerResult{Result: exited(2)}
	unreachable := executors.ServerResult{Err: errors.New("dial: connection refused")}
	multi := func(r executors.Result, servers ...executors.ServerResult) executors.Result {
		r.Servers = servers
		return r
	}
	tests := []struct {
		name     string
		o        Outcome
		cancel   *CancelRequest
		giveUp   string
		servers  int
		status   string
		exitCode int
		outcome  string
		reason   string
	}{
		{"success", Outcome{Result: exited(0)}, nil, "", 1, "completed", 0, OutcomeSuccess, ""},
		{"exit 3", Outcome{Result: exited(3)}, nil, "", 1, "failed", 3, OutcomeFailure, "exited with code 3"},
		{"timeout", Outcome{Result: executors.Result{TimedOut: true, Exited: true, ExitCode: 143, Reason: "timed out after 1s"}}, nil, "", 1,
			"timeout", -1, OutcomeTimeout, "timed out after 1s"},
		{"oom", Outcome{Result: executors.Result{OOMKilled: true, Exited: true, ExitCode: 137, Reason: "killed: out of memory (limit 32 MiB)"}}, nil, "", 1,
			"failed", 137, OutcomeFailure, "killed: out of memory (limit 32 MiB)"},
		{"user cancel", Outcome{Result: executors.Result{Cancelled: true, Exited: true, ExitCode: 143}}, &CancelRequest{Reason: "by alice"}, "", 1,
			"cancelled", 143, OutcomeCancelled, "cancelled: by alice"},
		{"cancel before start", Outcome{Result: executors.Result{Cancelled: true}}, &CancelRequest{Reason: "x"}, "", 1,
			"cancelled", 130, OutcomeCancelled, "cancelled: x"},
		{"shutdown", Outcome{Result: executors.Result{Cancelled: true, Exited: true, ExitCode: 143}}, &CancelRequest{Reason: "orchestrator shut down", Shutdown: true}, "", 1,
			"failed", 143, OutcomeCancelled, "stopped: orchestrator shut down"},
		{"could not run", Outcome{Err: errors.New("image not found")}, nil, "", 1, "failed", 125, OutcomeError, "could not run the job: image not found"},
		{"lost", Outcome{Err: fmt.Errorf("docker executor: %w: its container is gone", executors.ErrNotResumable)}, nil, "", 1,
			"failed", 125, OutcomeError, "lost track of the job: docker executor: execution cannot be resumed: its container is gone"},
		{"budget spent", Outcome{}, nil, "restart budget spent", 1, "failed", 125, OutcomeError, "restart budget spent"},
		{"multi all ok", Outcome{Result: exited(0)}, nil, "", 2, "completed", 0, OutcomeSuccess, ""},
		{"multi success", Outcome{Result: multi(exited(0), ok, ok)}, nil, "", 2, "completed", 0, OutcomeSuccess, ""},
		{"multi partial", Outcome{Result: multi(exited(1), ok, bad)}, nil, "", 2, "completed", 101, OutcomeFailure, "partial: failed on 1 of 2 servers"},
		{"multi one unreachable", Outcome{Result: multi(exited(1), ok, ok, unreachable)}, nil, "", 3, "completed", 101, OutcomeFailure, "partial: failed on 1 of 3 servers"},
		{"multi all failed", Outcome{Result: multi(exited(1), bad, unreachable)}, nil, "", 2, "failed", 102, OutcomeFailure, "failed on all 2 servers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge(tt.o, tt.cancel, tt.giveUp, tt.servers)
			if v.status != tt.status || v.exitCode != tt.exitCode || v.outcome != tt.outcome || v.reason != tt.reason {
				t.Fatalf("got %+v", v)
			}
		})
	}
}
