package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/secret"
)

func TestAuthentication(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	base := executors.Server{Name: "box", Host: s.Host, Port: s.Port, Username: s.User}
	with := func(f func(*executors.Server)) executors.Server {
		srv := base
		f(&srv)
		return srv
	}
	ok := map[string]executors.Server{
		"openssh key": with(func(v *executors.Server) { v.PrivateKey = secret.Value(s.Key) }),
		"pem key":     with(func(v *executors.Server) { v.PrivateKey = secret.Value(s.PEMKey) }),
		"encrypted key": with(func(v *executors.Server) {
			v.PrivateKey, v.Passphrase = secret.Value(s.EncryptedKey), secret.Value(s.Passphrase)
		}),
		"password": with(func(v *executors.Server) { v.Password = secret.Value(s.Password) }),
	}
	for name, srv := range ok {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res, c, err := run(t, e, bashSpec(t, `echo "I am $(id -un)"`, srv))
			if err != nil || !res.Succeeded() || c.stdout.String() != "I am "+s.User+"\n" {
				t.Fatalf("res=%+v err=%v stdout=%q", res, err, c.stdout.String())
			}
		})
	}
	bad := []struct {
		name string
		srv  executors.Server
		want error
	}{
		{"wrong password", with(func(v *executors.Server) { v.Password = "hunter2-wrong" }), ErrAuthRejected},
		{"wrong passphrase", with(func(v *executors.Server) { v.PrivateKey, v.Passphrase = secret.Value(s.EncryptedKey), "hunter2-wrong" }), ErrPassphrase},
		{"unparsable key", with(func(v *executors.Server) {
			v.PrivateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nhunter2\n-----END OPENSSH PRIVATE KEY-----\n"
		}), ErrKeyParse},
		{"unauthorized key", with(func(v *executors.Server) { v.PrivateKey = secret.Value(otherKey(t)) }), ErrAuthRejected},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := run(t, e, bashSpec(t, "true", tc.srv))
			if !errors.Is(err, tc.want) || executors.IsRetryable(err) {
				t.Fatalf("err = %v, want %v (not retryable)", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), s.Passphrase) {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
}

// otherKey is a valid private key the server does not authorize.
func otherKey(t *testing.T) string {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	b, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(b))
}

func fingerprint(s *testenv.SSHD) string { return ssh.FingerprintSHA256(s.HostKey) }

func writeKnownHosts(t *testing.T, path, line string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// knownLineWithOtherKey lists the server's address with a different key.
func knownLineWithOtherKey(t *testing.T, s *testenv.SSHD) string {
	return knownhosts.Line([]string{s.Addr}, newHostKey(t))
}

func TestConnectFailures(t *testing.T) {
	t.Parallel()
	opts := testOptions(t, nil)
	// Failure paths: the timeouts they may run into are short here.
	opts.DialTimeout, opts.HandshakeTimeout = 2*time.Second, 500*time.Millisecond
	e := newExecutor(t, opts)
	closed, _ := testenv.FreePort()
	silent := silentListener(t, nil)
	for _, tc := range []struct {
		name, host string
		port       int
		want       error
	}{
		{"closed port", "127.0.0.1", closed, ErrUnreachable},
		{"dns", "no-such-host.invalid", 22, ErrDNS},
		{"handshake timeout", "127.0.0.1", silent, ErrHandshakeTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := executors.Server{Name: tc.name, Host: tc.host, Port: tc.port, Username: "u", Password: "hunter2"}
			start := time.Now()
			_, _, err := run(t, e, bashSpec(t, "true", srv))
			if !errors.Is(err, tc.want) || executors.IsRetryable(err) {
				t.Fatalf("err = %v, want %v (not retryable)", err, tc.want)
			}
			d := time.Since(start)
			t.Logf("%s: %v (%s)", tc.name, err, d.Round(time.Millisecond))
			// A hang catcher, not a speed test: 5x the longest timeout set
			// above, below the 15s a timeout that was not applied would take.
			if d > 10*time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
}

func TestHostKeyVerification(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	srv := keyServer(s)

	t.Run("unknown refused", func(t *testing.T) {
		opts := testOptions(t, nil) // empty known_hosts
		_, _, err := run(t, newExecutor(t, opts), bashSpec(t, "true", srv))
		var hke *HostKeyError
		if !errors.Is(err, ErrHostKeyUnknown) || !errors.As(err, &hke) || hke.Presented != fingerprint(s) {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(err.Error(), fingerprint(s)) {
			t.Fatalf("message lacks the presented fingerprint: %v", err)
		}
	})
	t.Run("changed refused", func(t *testing.T) {
		opts := testOptions(t, nil)
		writeKnownHosts(t, opts.KnownHosts, knownLineWithOtherKey(t, s))
		_, _, err := run(t, newExecutor(t, opts), bashSpec(t, "true", srv))
		if !errors.Is(err, ErrHostKeyChanged) || !strings.Contains(err.Error(), fingerprint(s)) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("accept-new records then enforces", func(t *testing.T) {
		opts := testOptions(t, nil)
		opts.HostKeyPolicy = PolicyAcceptNew
		if res, _, err := run(t, newExecutor(t, opts), bashSpec(t, "true", srv)); err != nil || !res.Succeeded() {
			t.Fatalf("first contact: res=%+v err=%v", res, err)
		}
		b, _ := os.ReadFile(opts.KnownHosts)
		if strings.TrimSpace(string(b)) != s.KnownHostsLine() {
			t.Fatalf("known_hosts = %q, want %q", b, s.KnownHostsLine())
		}
		writeKnownHosts(t, opts.KnownHosts, knownLineWithOtherKey(t, s))
		_, _, err := run(t, newExecutor(t, opts), bashSpec(t, "true", srv))
		if !errors.Is(err, ErrHostKeyChanged) {
			t.Fatalf("after the key changed: err = %v", err)
		}
	})
	t.Run("pinned", func(t *testing.T) {
		opts := testOptions(t, nil)
		pinned := srv
		pinned.HostKeyFingerprints = []string{fingerprint(s)}
		if res, _, err := run(t, newExecutor(t, opts), bashSpec(t, "true", pinned)); err != nil || !res.Succeeded() {
			t.Fatalf("pinned: res=%+v err=%v", res, err)
		}
	})
}
