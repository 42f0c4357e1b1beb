package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func parseFlags(t *testing.T, args ...string) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

// Each level overrides only what it sets: a file value survives when env
// and flags are silent, env beats file, flags beat env.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
api:
  url: http://file:5001
jobs:
  max_concurrent: 7
  poll_interval: 9s
docker:
  default_memory: 128MiB
`)
	tests := []struct {
		name      string
		env       map[string]string
		flags     []string
		wantURL   string
		wantMax   int
		wantPoll  time.Duration
		wantMem   ByteSize
		wantToken string
	}{
		{name: "file only", wantURL: "http://file:5001", wantMax: 7, wantPoll: 9 * time.Second, wantMem: 128 * MiB},
		{name: "env beats file", env: map[string]string{"CRONIUM_API_URL": "http://env:1", "CRONIUM_JOBS_MAX_CONCURRENT": "3"},
			wantURL: "http://env:1", wantMax: 3, wantPoll: 9 * time.Second, wantMem: 128 * MiB},
		{name: "flag beats env", env: map[string]string{"CRONIUM_API_URL": "http://env:1"}, flags: []string{"--api-url", "http://flag:2"},
			wantURL: "http://flag:2", wantMax: 7, wantPoll: 9 * time.Second, wantMem: 128 * MiB},
		{name: "token alias", env: map[string]string{"INTERNAL_API_KEY": "alias"},
			wantURL: "http://file:5001", wantMax: 7, wantPoll: 9 * time.Second, wantMem: 128 * MiB, wantToken: "alias"},
		{name: "primary token beats alias", env: map[string]string{"INTERNAL_API_KEY": "alias", "CRONIUM_API_TOKEN": "primary"},
			wantURL: "http://file:5001", wantMax: 7, wantPoll: 9 * time.Second, wantMem: 128 * MiB, wantToken: "primary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(Sources{File: file, LookupEnv: envOf(tt.env), Flags: parseFlags(t, tt.flags...)})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.API.URL != tt.wantURL || cfg.Jobs.MaxConcurrent != tt.wantMax ||
				cfg.Jobs.PollInterval != tt.wantPoll || cfg.Docker.DefaultMemory != tt.wantMem ||
				cfg.API.Token.Reveal() != tt.wantToken {
				t.Fatalf("got url=%s max=%d poll=%s mem=%s token=%q", cfg.API.URL, cfg.Jobs.MaxConcurrent,
					cfg.Jobs.PollInterval, cfg.Docker.DefaultMemory, cfg.API.Token.Reveal())
			}
			// Untouched keys keep their defaults.
			if cfg.Jobs.StopGrace != Default().Jobs.StopGrace {
				t.Fatalf("stop_grace changed to %s", cfg.Jobs.StopGrace)
			}
		})
	}
}

// A file value equal to something other than the default must not be reset
// by the default (the bug of the earlier orchestrator), including false.
func TestFileFalseIsKept(t *testing.T) {
	file := writeFile(t, "docker:\n  read_only_root: false\n  enabled: false\n")
	cfg, err := Load(Sources{File: file})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Docker.ReadOnlyRoot || cfg.Docker.Enabled {
		t.Fatalf("false from file was reset: %+v", cfg.Docker)
	}
}

func TestLoadReportsEveryBadValueWithItsKey(t *testing.T) {
	file := writeFile(t, `
jobs:
  max_concurent: 3
  poll_interval: soon
docker:
  tmpfs_size: huge
`)
	env := map[string]string{"CRONIUM_JOBS_STOP_GRACE": "10", "CRONIUM_DOCKER_ENABLED": "yes please"}
	_, err := Load(Sources{File: file, LookupEnv: envOf(env), Flags: parseFlags(t, "--jobs-max-concurrent", "many")})
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []string{
		"jobs.max_concurent (file " + file + " line 3): unknown key",
		"jobs.poll_interval (file " + file + " line 4)",
		"docker.tmpfs_size (file " + file + " line 6)",
		"jobs.stop_grace (env CRONIUM_JOBS_STOP_GRACE)",
		"docker.enabled (env CRONIUM_DOCKER_ENABLED)",
		"jobs.max_concurrent (flag --jobs-max-concurrent)",
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not mention %q:\n%s", w, msg)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("want %d errors, got %d: %s", len(want), len(errs), msg)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := Default()
	cfg.API.URL = "localhost:5001/api"
	cfg.Jobs.MaxConcurrent = 0
	cfg.Docker.PullPolicy = "sometimes"
	cfg.Docker.User = "0:0"
	cfg.SSH.HostKeyPolicy = "trust-me"
	cfg.Admin.Listen = "0.0.0.0:9465"
	cfg.Jobs.MaskEnvNames = "DSN, MY-KEY"
	err := cfg.Validate()
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	for _, key := range []string{"api.url", "api.token", "jobs.max_concurrent", "docker.pull_policy",
		"docker.user", "ssh.host_key_policy", "admin.token", "jobs.mask_env_names"} {
		found := false
		for _, e := range errs {
			found = found || e.Key == key
		}
		if !found {
			t.Errorf("no problem reported for %s in %v", key, err)
		}
	}
}

// Masking is on by default; a file adds name parts, the environment turns
// it off.
func TestMaskSettings(t *testing.T) {
	if !Default().Jobs.MaskSecrets || Default().Jobs.MaskEnvNames != "" {
		t.Fatalf("defaults: %+v", Default().Jobs)
	}
	file := writeFile(t, "jobs:\n  mask_env_names: dsn, Auth_\n")
	cfg, err := Load(Sources{File: file, LookupEnv: envOf(map[string]string{"CRONIUM_JOBS_MASK_SECRETS": "false"})})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Jobs.MaskSecrets || cfg.Jobs.MaskEnvNames != "dsn, Auth_" {
		t.Fatalf("loaded %+v", cfg.Jobs)
	}
	cfg.API.Token = "t"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultsAreValidOnceTokenIsSet(t *testing.T) {
	cfg := Default()
	cfg.API.Token = "t"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load(Sources{File: filepath.Join("..", "config.example.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	cfg.API.Token = "t"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Orchestrator.ID != "orch-web-01" || cfg.Log.Format != "json" || cfg.Jobs.OutputMaxBytes != MiB {
		t.Fatalf("example values not applied: %+v", cfg)
	}
}

func TestKeysHaveDocsAndUniqueNames(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Keys() {
		if k.Doc == "" {
			t.Errorf("%s has no doc", k.Path)
		}
		for _, n := range []string{k.Path, k.Env, k.Flag} {
			if seen[n] {
				t.Errorf("duplicate name %s", n)
			}
			seen[n] = true
		}
	}
	for _, fixed := range []string{"CRONIUM_API_URL", "CRONIUM_API_TOKEN", "CRONIUM_ORCHESTRATOR_ID",
		"CRONIUM_HTTP_LISTEN", "CRONIUM_ADMIN_LISTEN", "CRONIUM_SSH_KNOWN_HOSTS", "CRONIUM_SSH_HOST_KEY_POLICY"} {
		if !seen[fixed] {
			t.Errorf("fixed environment name %s is missing", fixed)
		}
	}
}

func TestSecretsAreNotRendered(t *testing.T) {
	cfg := Default()
	cfg.API.Token = "s3cr3t-token"
	for _, k := range Keys() {
		if got := k.Get(&cfg); strings.Contains(got, "s3cr3t") {
			t.Fatalf("%s rendered the token: %s", k.Path, got)
		}
	}
}
