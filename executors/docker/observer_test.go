package docker

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/cronium/orchestrator/executors"
)

// startLost is a client whose ContainerStart starts the container but
// reports the API timeout, as a start whose answer was lost does.
type startLost struct{ apiClient }

func (c startLost) ContainerStart(ctx context.Context, id string, opts container.StartOptions) error {
	if err := c.apiClient.ContainerStart(ctx, id, opts); err != nil {
		return err
	}
	return fmt.Errorf("start container: %w", context.DeadlineExceeded)
}

// TestStartFailureRemovesContainer: a container whose start failed is
// removed, even if the daemon started it (its attach is gone, so the script
// can never reach it); the retried Run creates it afresh and runs the
// script instead of adopting the container and reporting the bootstrap's
// failure.
func TestStartFailureRemovesContainer(t *testing.T) {
	t.Parallel()
	d := newDockerEnv(t)
	rec := &recorder{}
	observe := func(o *Options) { o.Observer = rec }
	faulty := d.executorWrapping(func(api apiClient) apiClient { return startLost{api} }, observe)
	spec := d.spec(executors.Bash, `echo ran`)
	_, err := faulty.Run(context.Background(), spec, executors.Output{})
	if !executors.IsRetryable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the start's timeout, retryable", err)
	}
	d.requireNoContainer(spec.ExecutionID)
	if started, removed := rec.containers(); started != 0 || removed != 0 {
		t.Errorf("reported %d started, %d removed; want none: the start never succeeded", started, removed)
	}

	spec.Resume = executors.Resume{Resuming: true}
	o := newOutput()
	res, err := d.executor(observe).Run(context.Background(), spec, o.writers())
	mustSucceed(t, res, err, o)
	if o.stdout.String() != "ran\n" || o.stderr.Len() != 0 {
		t.Errorf("stdout %q stderr %q", o.stdout.String(), o.stderr.String())
	}
	if started, removed := rec.containers(); started != 1 || removed != 1 {
		t.Errorf("reported %d started, %d removed; want 1 and 1", started, removed)
	}
	d.requireNoContainer(spec.ExecutionID)
}

// TestObserverPairsStartedAndRemoved: a container is reported removed
// exactly when it was reported started, however its execution ends, so
// the running gauge neither drifts nor goes negative.
func TestObserverPairsStartedAndRemoved(t *testing.T) {
	t.Parallel()
	bg := context.Background()
	started := func(stdout, _ []byte) bool { return len(stdout) > 0 }
	tests := []struct {
		name    string
		started int
		run     func(t *testing.T, d *dockerEnv, e *Executor)
	}{
		{"success", 1, func(t *testing.T, d *dockerEnv, e *Executor) {
			o := newOutput()
			res, err := e.Run(bg, d.spec(executors.Bash, "echo ok"), o.writers())
			mustSucceed(t, res, err, o)
		}},
		{"failure", 1, func(t *testing.T, d *dockerEnv, e *Executor) {
			res, err := e.Run(bg, d.spec(executors.Bash, "exit 3"), executors.Output{})
			if err != nil || res.ExitCode != 3 {
				t.Fatalf("%+v, %v", res, err)
			}
		}},
		{"cancel", 1, func(t *testing.T, d *dockerEnv, e *Executor) {
			ctx, cancel := context.WithCancelCause(bg)
			o := newOutput()
			wait := runAsync(t, ctx, e, d.spec(executors.Bash, "echo start; sleep 60"), o.writers())
			o.stdout.waitContains(t, "start\n")
			cancel(executors.ErrCancelled)
			if res, err := wait(); err != nil || !res.Cancelled {
				t.Fatalf("%+v, %v", res, err)
			}
		}},
		{"cancel before start", 0, func(t *testing.T, d *dockerEnv, e *Executor) {
			ctx, cancel := context.WithCancelCause(bg)
			cancel(executors.ErrCancelled)
			if res, err := e.Run(ctx, d.spec(executors.Bash, "true"), executors.Output{}); err != nil || !res.Cancelled {
				t.Fatalf("%+v, %v", res, err)
			}
		}},
		{"detach and resume", 1, func(t *testing.T, d *dockerEnv, e *Executor) {
			spec, o := d.spec(executors.Bash, "echo start; sleep 1"), newOutput()
			detachWhen(t, d, e, spec, o, "start", started)
			res, err := resume(e, spec, o)
			mustSucceed(t, res, err, o)
		}},
		{"adopt without resume", 1, func(t *testing.T, d *dockerEnv, e *Executor) {
			spec := d.spec(executors.Bash, "echo start; sleep 1")
			detachWhen(t, d, e, spec, newOutput(), "start", started)
			o := newOutput()
			res, err := e.Run(bg, spec, o.writers())
			mustSucceed(t, res, err, o)
		}},
		{"never started container replaced", 1, func(t *testing.T, d *dockerEnv, e *Executor) {
			spec := d.spec(executors.Bash, "echo fresh")
			p, err := e.plan(spec)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.create(bg, p); err != nil {
				t.Fatal(err)
			}
			spec.Resume = executors.Resume{Resuming: true}
			o := newOutput()
			res, err := e.Run(bg, spec, o.writers())
			mustSucceed(t, res, err, o)
		}},
		{"detach and abandon", 1, func(t *testing.T, d *dockerEnv, e *Executor) {
			spec := d.spec(executors.Bash, "echo start; sleep 60")
			detachWhen(t, d, e, spec, newOutput(), "start", started)
			for range 2 {
				if err := e.Abandon(bg, spec); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"removed while running", 1, func(t *testing.T, d *dockerEnv, e *Executor) {
			spec, o := d.spec(executors.Bash, "echo start; sleep 60"), newOutput()
			wait := runAsync(t, bg, e, spec, o.writers())
			o.stdout.waitContains(t, "start\n")
			for _, c := range d.containers(spec.ExecutionID) {
				if err := d.cli.ContainerRemove(bg, c.ID, container.RemoveOptions{Force: true}); err != nil {
					t.Fatal(err)
				}
			}
			// Depending on when Run inspects it, the container is still
			// being removed (a result: killed, 137) or gone (not resumable);
			// either way cleanup finds it gone.
			res, err := wait()
			if err == nil && res.ExitCode != 137 || err != nil && (!errors.Is(err, executors.ErrNotResumable) || executors.IsRetryable(err)) {
				t.Fatalf("%+v, %v; want exit 137 or ErrNotResumable", res, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newDockerEnv(t)
			rec := &recorder{}
			tt.run(t, d, d.executor(func(o *Options) { o.Observer = rec }))
			if started, removed := rec.containers(); started != tt.started || removed != tt.started {
				t.Errorf("reported %d started, %d removed; want %d of each", started, removed, tt.started)
			}
		})
	}
}
