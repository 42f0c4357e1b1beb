package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/cronium/orchestrator/config"
)

// cmdValidate reports every invalid value with its key, one per line, and
// exits 1 when there is any.
func cmdValidate(args []string) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	load := configFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	cfg, loadErr := load()
	problems := fieldErrors(loadErr)
	if loadErr == nil || len(problems) > 0 {
		problems = append(problems, fieldErrors(cfg.Validate())...)
	}
	if len(problems) == 0 && loadErr != nil {
		return loadErr
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Println("invalid:", p)
		}
		return &exitError{code: 1, err: fmt.Errorf("%d invalid setting(s)", len(problems))}
	}
	fmt.Printf("configuration is valid (%d settings; backend %s)\n", len(config.Keys()), cfg.API.URL)
	return nil
}

func fieldErrors(err error) []*config.FieldError {
	var errs config.Errors
	if errors.As(err, &errs) {
		return errs
	}
	return nil
}
