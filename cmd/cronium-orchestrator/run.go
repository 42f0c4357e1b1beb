package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/daemon"
)

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	load := configFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	cfg, err := load()
	if err != nil {
		return usageError(err)
	}
	if err := cfg.Validate(); err != nil {
		return usageError(err)
	}
	return runDaemon(cfg)
}

// runDaemon runs until SIGTERM or SIGINT, then drains. A second signal
// exits at once.
func runDaemon(cfg config.Config) error {
	d, err := newDaemon(cfg, daemon.Options{Logger: newLogger(cfg.Log), Version: version})
	if err != nil {
		return usageError(err)
	}
	ctx, stop := signalContext()
	defer stop()
	return d.Run(ctx)
}

// newDaemon builds the daemon and makes its logger slog's default: from
// then on hollywood's own records (it logs through slog.Default) carry
// orchestrator_id like every other.
func newDaemon(cfg config.Config, opts daemon.Options) (*daemon.Daemon, error) {
	d, err := daemon.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	slog.SetDefault(d.Logger())
	return d, nil
}

func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
			return
		}
		<-sigs
		fmt.Fprintln(os.Stderr, "cronium-orchestrator: second signal, exiting without waiting for jobs")
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(sigs); cancel() }
}
