package mask

import (
	"strings"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/secret"
)

// DefaultNames are the parts of environment variable names whose values
// are masked: a name holding any of them, in any case, is a secret's
// (DB_PASSWORD, github_token, AWS_SECRET_ACCESS_KEY, MY_API_KEY).
var DefaultNames = []string{"TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASS", "API_KEY", "PRIVATE", "CREDENTIAL"}

// Policy says what is masked in every job's output. The zero Policy masks
// a job's own secrets by DefaultNames.
type Policy struct {
	// Disabled masks nothing (jobs.mask_secrets false).
	Disabled bool
	// Names are parts of variable names to mask beyond DefaultNames, as
	// ParseNames reads them (jobs.mask_env_names).
	Names []string
	// Always are masked in every job's output: the backend's API token.
	Always []secret.Value
}

// ParseNames reads a comma-separated list of name parts: trimmed, upper
// case, empty ones left out.
func ParseNames(list string) []string {
	var names []string
	for n := range strings.SplitSeq(list, ",") {
		if n = strings.ToUpper(strings.TrimSpace(n)); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// SecretName reports whether the environment variable name holds a
// secret by the policy's names.
func (p Policy) SecretName(name string) bool {
	name = strings.ToUpper(name)
	for _, part := range DefaultNames {
		if strings.Contains(name, part) {
			return true
		}
	}
	for _, part := range p.Names {
		if part != "" && strings.Contains(name, strings.ToUpper(part)) {
			return true
		}
	}
	return false
}

// ForJob is the masker of one job's output: the policy's Always values,
// the values of the job's environment variables whose names are secret,
// and the password, key passphrase and private key of each SSH server the
// job names (in its target or in metadata.servers). It is built from the
// job as the backend sent it, so a restarted process builds the same one
// from its journal; nil when masking is disabled or nothing is secret.
func (p Policy) ForJob(j backend.Job) *Masker {
	if p.Disabled {
		return nil
	}
	values := append([]secret.Value(nil), p.Always...)
	for name, v := range j.Execution.Environment {
		if p.SecretName(name) {
			values = append(values, secret.Value(v))
		}
	}
	servers := j.Metadata.Servers
	if d := j.Execution.Target.ServerDetails; d != nil {
		servers = append([]backend.ServerDetails{*d}, servers...)
	}
	for _, s := range servers {
		values = append(values, secret.Value(s.Password), secret.Value(s.Passphrase), secret.Value(s.PrivateKey))
	}
	return New(values...)
}
