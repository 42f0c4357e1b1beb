package mask

import (
	"slices"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/secret"
)

func TestSecretName(t *testing.T) {
	extra := Policy{Names: ParseNames(" dsn, ,Auth ")}
	tests := []struct {
		name string
		p    Policy
		want bool
	}{
		{"DB_PASSWORD", Policy{}, true},
		{"github_token", Policy{}, true},
		{"AWS_SECRET_ACCESS_KEY", Policy{}, true},
		{"SMTP_PASSWD", Policy{}, true},
		{"MYSQL_PASS", Policy{}, true},
		{"Stripe_Api_Key", Policy{}, true},
		{"PRIVATE_KEY_PEM", Policy{}, true},
		{"GOOGLE_CREDENTIALS", Policy{}, true},
		{"HOME", Policy{}, false},
		{"DATABASE_DSN", Policy{}, false},
		{"DATABASE_DSN", extra, true},
		{"x_auth_header", extra, true},
		{"HOME", extra, false},
	}
	for _, tt := range tests {
		if got := tt.p.SecretName(tt.name); got != tt.want {
			t.Errorf("SecretName(%q) with names %v = %v, want %v", tt.name, tt.p.Names, got, tt.want)
		}
	}
	if got := ParseNames(" dsn, ,Auth "); !slices.Equal(got, []string{"DSN", "AUTH"}) {
		t.Errorf("ParseNames: %q", got)
	}
}

func TestForJob(t *testing.T) {
	const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAB3NzaC1yc2E\n-----END OPENSSH PRIVATE KEY-----\n"
	job := backend.Job{
		Execution: backend.Execution{
			Environment: backend.FlexStringMap{"DB_PASSWORD": "db-pw-1234", "DSN": "postgres://u:dsn-pw@h/db",
				"HOME": "/home/user", "MY_TOKEN": "abc"},
			Target: backend.Target{Type: backend.TargetServer, ServerDetails: &backend.ServerDetails{
				Host: "h", Username: "u", Password: "ssh-pw-1", PrivateKey: key, Passphrase: "phrase-1"}},
		},
		Metadata: backend.Metadata{Servers: []backend.ServerDetails{{Host: "h2", Password: "ssh-pw-2"}}},
	}
	const text = "db-pw-1234 postgres://u:dsn-pw@h/db /home/user abc ssh-pw-1 phrase-1 ssh-pw-2 api-token-1\n" +
		"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAB3NzaC1yc2E\n-----END OPENSSH PRIVATE KEY-----\n"
	tests := []struct {
		name string
		p    Policy
		want string
	}{
		{"defaults", Policy{Always: []secret.Value{"api-token-1"}},
			"[MASKED] postgres://u:dsn-pw@h/db /home/user abc [MASKED] [MASKED] [MASKED] [MASKED]\n" +
				"[MASKED]\n[MASKED]\n[MASKED]\n"},
		{"extra names", Policy{Names: []string{"DSN"}},
			"[MASKED] [MASKED] /home/user abc [MASKED] [MASKED] [MASKED] api-token-1\n" +
				"[MASKED]\n[MASKED]\n[MASKED]\n"},
		{"off", Policy{Disabled: true, Names: []string{"DSN"}, Always: []secret.Value{"api-token-1"}}, text},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.ForJob(job).Text(text); got != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
	if m := (Policy{}).ForJob(backend.Job{}); m != nil {
		t.Errorf("a job with no secrets has a masker")
	}
	if strings.Contains((Policy{}).ForJob(job).Text("abc"), Replacement) {
		t.Errorf("a value under 4 bytes was masked")
	}
}
