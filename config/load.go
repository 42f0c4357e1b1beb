package config

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvConfigFile names the config file when --config is not given.
const EnvConfigFile = "CRONIUM_CONFIG"

// Sources are where Load reads settings from. Nil fields are skipped.
type Sources struct {
	// File is a YAML file; empty means none.
	File string
	// LookupEnv reads the environment (os.LookupEnv in production).
	LookupEnv func(string) (string, bool)
	// Flags were registered with RegisterFlags and parsed; only flags
	// given on the command line are applied.
	Flags *flag.FlagSet
}

// FieldError is a problem with one setting.
type FieldError struct {
	Key    string // "jobs.max_concurrent"
	Source string // "file config.yaml line 4", "env CRONIUM_X", "flag --x", or "" for validation
	Err    error
}

func (e *FieldError) Error() string {
	if e.Source == "" {
		return fmt.Sprintf("%s: %v", e.Key, e.Err)
	}
	return fmt.Sprintf("%s (%s): %v", e.Key, e.Source, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Errors is every problem found, so that a user fixes them all at once.
type Errors []*FieldError

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return "invalid configuration: " + strings.Join(parts, "; ")
}

// Load applies defaults, then the file, then the environment, then flags.
// It returns the config and, when any value could not be read, an Errors
// listing all of them (the config then holds every value that could).
func Load(src Sources) (Config, error) {
	cfg := Default()
	var errs Errors
	keys := Keys()

	if src.File != "" {
		errs = append(errs, applyFile(&cfg, keys, src.File)...)
	}
	if src.LookupEnv != nil {
		errs = append(errs, applyEnv(&cfg, keys, src.LookupEnv)...)
	}
	if src.Flags != nil {
		errs = append(errs, applyFlags(&cfg, keys, src.Flags)...)
	}
	if len(errs) > 0 {
		return cfg, errs
	}
	return cfg, nil
}

// RegisterFlags adds a string flag for every key (defaults are left empty
// so that an unset flag is told apart from one set to the default) and
// --config. It returns a pointer to the config file path.
func RegisterFlags(fs *flag.FlagSet) *string {
	file := fs.String("config", "", "YAML config file (or "+EnvConfigFile+")")
	for _, k := range Keys() {
		fs.String(k.Flag, "", k.Doc+" (env "+k.Env+")")
	}
	return file
}

// ConfigFile picks the file named by --config, else by CRONIUM_CONFIG.
func ConfigFile(flagValue string, lookupEnv func(string) (string, bool)) string {
	if flagValue != "" {
		return flagValue
	}
	if lookupEnv != nil {
		if v, ok := lookupEnv(EnvConfigFile); ok {
			return v
		}
	}
	return ""
}

func applyEnv(cfg *Config, keys []Key, lookup func(string) (string, bool)) Errors {
	var errs Errors
	for _, k := range keys {
		for _, name := range append([]string{k.Env}, k.Aliases...) {
			raw, ok := lookup(name)
			if !ok {
				continue
			}
			if err := k.Set(cfg, raw); err != nil {
				errs = append(errs, &FieldError{Key: k.Path, Source: "env " + name, Err: err})
			}
			break
		}
	}
	return errs
}

func applyFlags(cfg *Config, keys []Key, fs *flag.FlagSet) Errors {
	byFlag := make(map[string]Key, len(keys))
	for _, k := range keys {
		byFlag[k.Flag] = k
	}
	var errs Errors
	fs.Visit(func(f *flag.Flag) {
		k, ok := byFlag[f.Name]
		if !ok {
			return
		}
		if err := k.Set(cfg, f.Value.String()); err != nil {
			errs = append(errs, &FieldError{Key: k.Path, Source: "flag --" + f.Name, Err: err})
		}
	})
	return errs
}

// applyFile reads the YAML file as a tree of scalars. Every key is parsed
// with the same code as the environment and flags, so errors name the key
// and line, and unknown keys are reported instead of ignored. A key set to
// null (or left empty) counts as not set.
func applyFile(cfg *Config, keys []Key, path string) Errors {
	data, err := os.ReadFile(path)
	if err != nil {
		return Errors{{Key: "config", Source: "file " + path, Err: err}}
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file sets nothing
		}
		return Errors{{Key: "config", Source: "file " + path, Err: fmt.Errorf("not valid YAML: %w", err)}}
	}
	byPath := make(map[string]Key, len(keys))
	sections := make(map[string]bool)
	for _, k := range keys {
		byPath[k.Path] = k
		for p := k.Path; strings.Contains(p, "."); {
			p = p[:strings.LastIndex(p, ".")]
			sections[p] = true
		}
	}
	var errs Errors
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			name, val := n.Content[i], n.Content[i+1]
			key := name.Value
			if prefix != "" {
				key = prefix + "." + name.Value
			}
			source := fmt.Sprintf("file %s line %d", path, name.Line)
			fail := func(err error) { errs = append(errs, &FieldError{Key: key, Source: source, Err: err}) }
			switch {
			case name.Kind != yaml.ScalarNode || name.Value == "":
				// "? [a, b]" or "": no name to report; report where it is
				key = cmp.Or(prefix, "config")
				fail(errors.New("want a key name"))
			case sections[key] && val.Kind == yaml.MappingNode:
				walk(val, key)
			case sections[key]:
				fail(errors.New("is a section: want nested keys"))
			case byPath[key].Path == "":
				fail(errors.New("unknown key"))
			case val.Kind != yaml.ScalarNode:
				fail(errors.New("want a single value"))
			case val.Tag == "!!null":
				// explicitly empty: keep the lower level's value
			default:
				if err := byPath[key].Set(cfg, val.Value); err != nil {
					fail(err)
				}
			}
		}
	}
	if len(doc.Content) == 1 {
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return Errors{{Key: "config", Source: "file " + path, Err: errors.New("want a mapping of sections at the top level")}}
		}
		walk(root, "")
	}
	return errs
}
