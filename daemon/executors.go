package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/executors/docker"
	"github.com/cronium/orchestrator/executors/httpreq"
	"github.com/cronium/orchestrator/executors/ssh"
	"github.com/cronium/orchestrator/jobspec"
)

// executorSet is every executor of the process, by the kind of job it runs.
type executorSet struct {
	byKind map[jobspec.Kind]executors.Executor
	docker *docker.Executor
	ssh    *ssh.Executor
}

// executorObserver receives the executors' metrics (*metrics.Metrics).
type executorObserver interface {
	docker.Observer
	ssh.Observer
}

func newExecutorSet(cfg config.Config, id string, log *slog.Logger, override map[jobspec.Kind]executors.Executor,
	obs executorObserver) (*executorSet, error) {
	if override != nil {
		return &executorSet{byKind: override}, nil
	}
	set := &executorSet{byKind: map[jobspec.Kind]executors.Executor{
		jobspec.KindHTTP: httpreq.New(nil),
	}}
	if cfg.Docker.Enabled {
		dockerOpts := docker.OptionsFromConfig(cfg, id)
		dockerOpts.Logger = log.With("executor", "docker")
		dockerOpts.Observer = obs
		ex, err := docker.New(dockerOpts)
		if err != nil {
			return nil, fmt.Errorf("docker executor: %w", err)
		}
		set.docker = ex
		set.byKind[jobspec.KindContainer] = ex
	}
	sshOpts := ssh.OptionsFromConfig(cfg, id)
	sshOpts.Logger = log.With("executor", "ssh")
	sshOpts.Observer = obs
	sx, err := ssh.New(sshOpts)
	if err != nil {
		return nil, fmt.Errorf("ssh executor: %w", err)
	}
	set.ssh = sx
	set.byKind[jobspec.KindSSH] = sx
	return set, nil
}

func (s *executorSet) names() []string {
	var names []string
	for k := range s.byKind {
		names = append(names, string(k))
	}
	sort.Strings(names)
	return names
}

// ping checks Docker, when container jobs are enabled.
func (s *executorSet) ping(ctx context.Context) error {
	if s.docker == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return s.docker.Ping(ctx)
}

func (s *executorSet) close() {
	if s.docker != nil {
		_ = s.docker.Close()
	}
	if s.ssh != nil {
		_ = s.ssh.Close() // after the drain: running remote jobs were stopped or reported
	}
}
