package docker

import (
	"context"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/versions"
)

// adopt looks for the container an earlier Run created. It follows one that
// started, removes one that never did (the earlier Run's attach may have
// spent its stdin, so the script could not reach it) and returns nil, nil
// when there is none or it is being removed, for the caller to create it.
//
// The calls up to the follow ignore ctx's cancellation (they are bounded by
// the API timeout): a running container found after a cancel must be
// stopped by waitExit, with SIGTERM and the grace period, not be left
// behind or killed as if its script had never started.
func (x *execution) adopt(ctx context.Context) (*session, error) {
	ctx = context.WithoutCancel(ctx)
	info, found, err := x.e.inspect(ctx, x.plan.name)
	if err != nil || !found {
		return nil, err
	}
	if err := checkOwner(info, x.spec.ExecutionID); err != nil {
		return nil, err
	}
	x.id = info.ID
	if info, err = x.settleUpload(ctx, info); err != nil {
		return nil, err
	}
	switch info.State.Status {
	case "created":
		x.log.Info("removing a container an earlier run created but never started", "container_id", shortID(x.id))
		if err := x.e.remove(ctx, x.id); err != nil {
			return nil, err
		}
		x.id = ""
		return nil, nil
	case "removing":
		// A removal in progress ends as "not found", so it is handled as
		// one: setup waits for the name to be free and creates the
		// container afresh, unless the journal says the script had
		// started (then how it ended is unknown). Seen after a kill -9
		// that came while a detached setup discarded its container.
		x.log.Debug("the container is being removed", "container_id", shortID(x.id))
		x.id = ""
		return nil, nil
	case "exited", "dead":
		never, err := x.scriptNeverArrived(ctx, info)
		if err != nil {
			return nil, fmt.Errorf("read the exited container's output: %w", err)
		}
		if never {
			x.log.Info("removing a container whose script never arrived (its upload was cut); starting the job afresh",
				"container_id", shortID(x.id))
			if err := x.e.remove(ctx, x.id); err != nil {
				return nil, err
			}
			x.id, x.freshStart = "", true
			return nil, nil
		}
	}
	x.started = true // see Observer
	x.log.Info("resuming container", "container_id", shortID(x.id), "state", info.State.Status,
		"skip_stdout", x.spec.Resume.StdoutBytes, "skip_stderr", x.spec.Resume.StderrBytes)
	return x.follow(ctx, info)
}

// follow streams a started container's output from its log, from the
// beginning (the local driver keeps it byte for byte), skipping what earlier
// Runs delivered. For an exited container the stream is the rest of its
// output and the wait returns at once. ctx must not be cancellable (see
// adopt).
func (x *execution) follow(ctx context.Context, info container.InspectResponse) (*session, error) {
	repair, err := x.e.repairsLogs(ctx)
	if err != nil {
		return nil, err
	}
	lctx, cancel, disarm := x.e.streamContext(ctx)
	rc, err := x.e.api.ContainerLogs(lctx, x.id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	disarm()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("read container logs: %w", err)
	}
	r := newReplay(newOutputWriter(x.out.Stdout, x.log, "stdout"), newOutputWriter(x.out.Stderr, x.log, "stderr"),
		x.spec.Resume.StdoutBytes, x.spec.Resume.StderrBytes, repair)
	output := startStream(func() error { return r.copyFrom(rc) }, func() { cancel(); rc.Close() })

	st := info.State
	s := &session{output: output, replay: r, exited: !st.Running && !st.Paused && !st.Restarting}
	x.timings.SetupCompleted = time.Now()
	x.timings.ExecStarted = parseTime(st.StartedAt)
	if s.exited {
		x.timings.ExecCompleted = parseTime(st.FinishedAt)
	}
	s.wait = x.e.startWait(ctx, x.id)
	return s, nil
}

// finishReplay completes output read from the log. Docker 20.10 ends a
// follow stream when the container stops, before the last messages are read
// (moby#43860), so the log of a container that was running when followed is
// read once more, to its end, and what the first pass missed is written.
// The container has exited: the read is bounded but ignores cancellation.
func (x *execution) finishReplay(ctx context.Context, s *session) error {
	r := s.replay
	if !s.exited {
		r = r.again()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), x.e.opts.APITimeout)
		defer cancel()
		rc, err := x.e.api.ContainerLogs(ctx, x.id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
		if err != nil {
			return fmt.Errorf("read container logs: %w", err)
		}
		defer rc.Close()
		if err := r.copyFrom(rc); err != nil {
			return fmt.Errorf("read container logs: %w", err)
		}
	}
	return r.end()
}

// repairsLogs reports whether the daemon's log reader needs the repair in
// replay.go: API 1.41 (Docker 20.10) and older.
func (e *Executor) repairsLogs(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.APITimeout)
	defer cancel()
	ping, err := e.api.Ping(ctx)
	if err != nil {
		return false, fmt.Errorf("ping docker: %w", err)
	}
	return ping.APIVersion == "" || versions.LessThan(ping.APIVersion, "1.42"), nil
}

// streamContext is for a call whose response outlives it. The context ends
// when cancel is called, and, until disarm is called, when the call takes
// longer than the API timeout. It never follows ctx's cancellation, so that
// the stop sequence after a cancellation still sees output.
func (e *Executor) streamContext(ctx context.Context) (_ context.Context, cancel, disarm func()) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	timer := time.AfterFunc(e.opts.APITimeout, cancel)
	return sctx, cancel, func() { timer.Stop() }
}

// inspect returns the container named by ref; found is false when there is
// none.
func (e *Executor) inspect(ctx context.Context, ref string) (_ container.InspectResponse, found bool, _ error) {
	ctx, cancel := context.WithTimeout(ctx, e.opts.APITimeout)
	defer cancel()
	info, err := e.api.ContainerInspect(ctx, ref)
	switch {
	case cerrdefs.IsNotFound(err):
		return info, false, nil
	case err != nil:
		return info, false, fmt.Errorf("inspect container %s: %w", ref, err)
	case info.ContainerJSONBase == nil || info.State == nil || info.Config == nil:
		return info, false, fmt.Errorf("inspect container %s: incomplete answer", ref)
	}
	return info, true, nil
}

// checkOwner refuses a container that holds the execution's name without
// its labels: it is not ours to follow or remove.
func checkOwner(info container.InspectResponse, executionID string) error {
	labels := info.Config.Labels
	if labels[LabelManaged] != "true" || labels[LabelExecution] != executionID {
		return fmt.Errorf("container %s holds the name for execution %s but lacks its labels; not touching it",
			info.Name, executionID)
	}
	return nil
}

// parseTime reads the daemon's timestamps; zero when absent.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}
