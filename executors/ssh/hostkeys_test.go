package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func newHostKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func hostKeysAt(t *testing.T, policy HostKeyPolicy, lines ...string) (*hostKeys, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	if len(lines) > 0 {
		_ = os.MkdirAll(filepath.Dir(path), 0o700)
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &hostKeys{path: path, policy: policy, log: slog.New(slog.DiscardHandler)}, path
}

func TestHostKeysStrict(t *testing.T) {
	t.Parallel()
	const addr = "db.example:2222"
	known, other := newHostKey(t), newHostKey(t)
	hk, _ := hostKeysAt(t, PolicyStrict, knownhosts.Line([]string{addr}, known))

	if err := hk.forDial(addr, nil).verify(known); err != nil {
		t.Fatalf("known key refused: %v", err)
	}
	err := hk.forDial(addr, nil).verify(other)
	var hke *HostKeyError
	if !errors.Is(err, ErrHostKeyChanged) || !errors.As(err, &hke) || hke.Presented != ssh.FingerprintSHA256(other) {
		t.Fatalf("changed key: err = %v", err)
	}
	if !strings.Contains(err.Error(), ssh.FingerprintSHA256(other)) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(known)) {
		t.Fatalf("message names neither fingerprint: %v", err)
	}
	err = hk.forDial("other.example:22", nil).verify(known)
	if !errors.Is(err, ErrHostKeyUnknown) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(known)) {
		t.Fatalf("unknown host: err = %v", err)
	}
	if got := hk.forDial(addr, nil).algorithms(); len(got) != 1 || got[0] != ssh.KeyAlgoED25519 {
		t.Fatalf("algorithms = %v, want [ssh-ed25519]", got)
	}
}

func TestHostKeysMissingFileIsEmpty(t *testing.T) {
	t.Parallel()
	hk, path := hostKeysAt(t, PolicyStrict)
	if err := hk.forDial("a:22", nil).verify(newHostKey(t)); !errors.Is(err, ErrHostKeyUnknown) {
		t.Fatalf("err = %v, want unknown", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("strict policy created the known_hosts file")
	}
}

func TestHostKeysAcceptNew(t *testing.T) {
	t.Parallel()
	const addr = "10.1.2.3:22"
	first, second := newHostKey(t), newHostKey(t)
	hk, path := hostKeysAt(t, PolicyAcceptNew)
	// Many connections meet the new server at once: one line is recorded.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := hk.forDial(addr, nil).verify(first); err != nil {
				t.Errorf("first key refused: %v", err)
			}
		})
	}
	wg.Wait()
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "\n"); n != 1 {
		t.Fatalf("known_hosts has %d lines, want 1:\n%s", n, b)
	}
	if err := hk.forDial(addr, nil).verify(second); !errors.Is(err, ErrHostKeyChanged) {
		t.Fatalf("changed key after accept-new: err = %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("known_hosts mode %v", st.Mode().Perm())
	}
}

func TestHostKeysPinned(t *testing.T) {
	t.Parallel()
	k, other := newHostKey(t), newHostKey(t)
	hk, _ := hostKeysAt(t, PolicyInsecureIgnore)
	fp := ssh.FingerprintSHA256(k)
	for _, pin := range []string{fp, strings.TrimPrefix(fp, "SHA256:"), " " + fp + "= "} {
		if err := hk.forDial("a:22", []string{pin}).verify(k); err != nil {
			t.Fatalf("pin %q refused: %v", pin, err)
		}
	}
	// Pins win over every policy, insecure-ignore included.
	if err := hk.forDial("a:22", []string{fp}).verify(other); !errors.Is(err, ErrHostKeyChanged) {
		t.Fatalf("mismatching pin: err = %v", err)
	}
	if err := hk.forDial("a:22", nil).verify(other); err != nil {
		t.Fatalf("insecure-ignore refused: %v", err)
	}
}
