package main

import (
	"flag"
	"log/slog"
	"os"
	"strings"

	"github.com/cronium/orchestrator/config"
)

// configFlags registers every config key as a flag on fs and returns a
// loader to call after fs.Parse.
func configFlags(fs *flag.FlagSet) func() (config.Config, error) {
	file := config.RegisterFlags(fs)
	return func() (config.Config, error) {
		return config.Load(config.Sources{
			File:      config.ConfigFile(*file, os.LookupEnv),
			LookupEnv: os.LookupEnv,
			Flags:     fs,
		})
	}
}

// newLogger builds the process logger and makes it the default, so that
// hollywood's own crash reports are structured like ours (newDaemon then
// makes the daemon's, which adds orchestrator_id, the default).
func newLogger(c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	logger := slog.New(h)
	slog.SetDefault(logger)
	return logger
}

// usageError is a bad command line or configuration: exit code 2, one line.
func usageError(err error) error { return &exitError{code: 2, err: err} }
