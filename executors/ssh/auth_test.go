package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/secret"
)

func TestParseKey(t *testing.T) {
	t.Parallel()
	const pass = "correct horse"
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(b *pem.Block, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(b))
	}
	openssh := pemOf(ssh.MarshalPrivateKey(edPriv, ""))
	opensshEnc := pemOf(ssh.MarshalPrivateKeyWithPassphrase(edPriv, "", []byte(pass)))
	pkcs1 := pemOf(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaPriv)}, nil)
	//lint:ignore SA1019 legacy encrypted PEM keys are still in the wild
	legacy, err := x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaPriv), //nolint:staticcheck
		[]byte(pass), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	pemEnc := pemOf(legacy, nil)

	for _, tc := range []struct {
		name, key, pass string
		want            error
	}{
		{"openssh", openssh, "", nil},
		{"openssh with needless passphrase", openssh, pass, nil},
		{"pem pkcs1", pkcs1, "", nil},
		{"openssh encrypted", opensshEnc, pass, nil},
		{"openssh encrypted, wrong passphrase", opensshEnc, "nope", ErrPassphrase},
		{"openssh encrypted, no passphrase", opensshEnc, "", ErrPassphrase},
		{"pem encrypted", pemEnc, pass, nil},
		{"pem encrypted, wrong passphrase", pemEnc, "nope", ErrPassphrase},
		{"garbage", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", "", ErrKeyParse},
		{"not a key", "hello", "", ErrKeyParse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseKey(tc.key, tc.pass)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil {
				return
			}
			msg := err.Error()
			if strings.Contains(msg, "nope") || strings.Contains(msg, pass) || strings.Contains(msg, "AAAA") {
				t.Fatalf("error leaks a secret: %s", msg)
			}
		})
	}
	// Wrong passphrase and missing passphrase read differently.
	_, e1 := parseKey(opensshEnc, "nope")
	_, e2 := parseKey(opensshEnc, "")
	if e1.Error() == e2.Error() {
		t.Fatalf("wrong and missing passphrase give the same message: %v", e1)
	}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	_, err := newCredentials(executors.Server{Host: "h", Username: "u"}, nil, slog.Default())
	if !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("err = %v, want ErrNoCredentials", err)
	}
	a := executors.Server{Password: secret.Value("one")}
	b := executors.Server{Password: secret.Value("two")}
	if credentialID(a) == credentialID(b) {
		t.Fatal("different passwords share a pool key")
	}
	if strings.Contains(credentialID(a), "one") {
		t.Fatal("pool key holds the password")
	}
	c, err := newCredentials(a, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if m, release := c.methods(); len(m) != 2 {
		t.Fatalf("password gives %d methods, want password and keyboard-interactive", len(m))
	} else {
		release()
	}
}
