package supervisor

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/cronium/orchestrator/actors/job"
	"github.com/cronium/orchestrator/actors/kit"
	"github.com/cronium/orchestrator/actors/logactor"
	"github.com/cronium/orchestrator/actors/poller"
	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/executors/fake"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/journal"
	"github.com/cronium/orchestrator/messages"
)

// credentialsBackend hands out an SSH server's credentials, as the
// backend does for a job that names its server by id only.
type credentialsBackend struct {
	*recordingBackend
	details backend.ServerDetails
}

func (b credentialsBackend) ServerCredentials(context.Context, string) (backend.ServerDetails, error) {
	return b.details, nil
}

// startMasking runs a supervisor over b with the default mask policy and
// what an earlier process left, the fake executor running every kind.
func startMasking(t *testing.T, b Backend, rec Recovery) (*actor.Engine, *actor.PID) {
	t.Helper()
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		t.Fatal(err)
	}
	f := fake.New()
	pid := Spawn(engine, Deps{
		Backend:   b,
		Executors: map[jobspec.Kind]executors.Executor{jobspec.KindContainer: f, jobspec.KindSSH: f},
		Clock:     kit.RealClock{},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Recovery:  rec,
		Settings: Settings{OrchestratorID: "orch-test", OutputMaxBytes: 1 << 20, RecentLines: 10, MaxRestarts: 3,
			RestartWindow: time.Minute,
			Poll:          poller.Settings{Capacity: 4, PollInterval: time.Hour, MaxBackoff: time.Hour},
			Job: job.Settings{DefaultTimeout: time.Minute, CancelCheckInterval: time.Hour,
				BackoffInitial: 10 * time.Millisecond, BackoffMax: 10 * time.Millisecond, FinalizeTimeout: time.Second},
			Logs: logactor.Settings{BatchLines: 100, BatchBytes: 1 << 16, BatchInterval: time.Second}},
	})
	t.Cleanup(func() { stopTree(t, engine, pid) })
	return engine, pid
}

func completed(t *testing.T, b *recordingBackend, id string) backend.Completion {
	t.Helper()
	testenv.Eventually(t, testenv.Patience, id+"'s completion", func() bool { n, _ := b.counts(id); return n == 1 })
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.completed[id]
}

// A job resumed from the journal after a restart masks its output as the
// first process did: the masker is built again from the journaled job.
// (The fake executor replays the execution from the start: it cannot
// resume a fresh execution from kept offsets. That the masker covers
// output written before it was set is output's TestRecentLinesAndMultiLineSecrets.)
func TestRecoveredJobIsMasked(t *testing.T) {
	j := backend.Job{ID: "job_r", Execution: backend.Execution{Script: &backend.Script{Type: "BASH", Content: "x"},
		Environment: backend.FlexStringMap{"DB_PASSWORD": "db-pw-hunter2", "FAKE_STDOUT": "pw=db-pw-hunter2\n",
			"FAKE_LINES": "1"}}}
	raw, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	b := newRecordingBackend()
	startMasking(t, b, Recovery{
		Entries: []journal.Entry{{JobID: j.ID, Stage: journal.Running, Job: raw, ClaimedAt: time.Now(),
			ExecutionID: "exec_r", Executor: string(jobspec.KindContainer), Attempt: 1}},
	})
	c := completed(t, b, j.ID)
	if c.Output.Stdout != "pw=[MASKED]\nline 1\n" {
		t.Fatalf("recovered job's output %q / %q", c.Output.Stdout, c.Output.Stderr)
	}
}

// Credentials fetched for a job that names its server by id are masked
// too: the masker is built again once they arrive.
func TestFetchedCredentialsAreMasked(t *testing.T) {
	b := credentialsBackend{recordingBackend: newRecordingBackend(),
		details: backend.ServerDetails{ID: "7", Host: "h.invalid", Username: "u", Password: "ssh-pw-5678"}}
	engine, sup := startMasking(t, b, Recovery{})
	j := backend.Job{ID: "job_c", Execution: backend.Execution{Script: &backend.Script{Type: "BASH", Content: "x"},
		Target:      backend.Target{Type: backend.TargetServer, ServerID: "7"},
		Environment: backend.FlexStringMap{"FAKE_STDERR": "login ssh-pw-5678 refused\n", "FAKE_EXIT": "1"}}}
	kit.Send(engine, sup, messages.JobsClaimed{Jobs: []backend.Job{j}, ClaimedAt: time.Now()})
	c := completed(t, b.recordingBackend, j.ID)
	if c.Output.Stderr != "login [MASKED] refused\n[cronium] exited with code 1\n" {
		t.Fatalf("stderr %q", c.Output.Stderr)
	}
}
