package ssh

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/cronium/orchestrator/executors"
)

// credentialID identifies a server's credentials without keeping them in
// the clear: connections are pooled per (address, user, credentials), so a
// job never reuses a connection authenticated with someone else's key.
func credentialID(srv executors.Server) string {
	h := sha256.New()
	for _, s := range []string{srv.PrivateKey.Reveal(), srv.Passphrase.Reveal(), srv.Password.Reveal()} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// parseKey returns the signer for a PEM or OpenSSH private key. The
// passphrase is tried only when the key turns out to be encrypted, so a
// passphrase configured for an unencrypted key is harmless.
func parseKey(key, passphrase string) (ssh.Signer, error) {
	signer, err := ssh.ParsePrivateKey([]byte(key))
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return signer, nil
	case !errors.As(err, &missing):
		// x/crypto's parse errors name formats, never key bytes, but
		// they are not needed to act on this: keep the message fixed.
		return nil, errorf(ErrKeyParse, "ssh: private key cannot be parsed (want PEM or OpenSSH format)")
	case passphrase == "":
		return nil, errorf(ErrPassphrase, "ssh: private key is encrypted and no passphrase is set")
	}
	signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(key), []byte(passphrase))
	switch {
	case errors.Is(err, x509.IncorrectPasswordError):
		return nil, errorf(ErrPassphrase, "ssh: private key passphrase is wrong")
	case err != nil:
		return nil, errorf(ErrKeyParse, "ssh: encrypted private key cannot be decrypted (unsupported cipher or format)")
	}
	return signer, nil
}

// credentials are a server's authentication methods, parsed once per pool
// entry: decrypting a bcrypt-protected key costs tens of milliseconds.
type credentials struct {
	signer   ssh.Signer
	password string
	// agentSocket is set when the ssh-agent is enabled.
	agentSocket *string
	log         *slog.Logger
}

func newCredentials(srv executors.Server, agentSocket *string, log *slog.Logger) (*credentials, error) {
	c := &credentials{password: srv.Password.Reveal(), agentSocket: agentSocket, log: log}
	if srv.PrivateKey.IsSet() {
		s, err := parseKey(srv.PrivateKey.Reveal(), srv.Passphrase.Reveal())
		if err != nil {
			return nil, fmt.Errorf("server %s: %w", srv.Label(), err)
		}
		c.signer = s
	}
	if c.signer == nil && c.password == "" && agentSocket == nil {
		return nil, errorf(ErrNoCredentials, "ssh: server %s has no private key or password and the ssh-agent is not enabled",
			srv.Label())
	}
	return c, nil
}

// methods lists the auth methods in the order OpenSSH's client tries them:
// the job's key, the agent's keys, then the password (also answered over
// keyboard-interactive, which PAM-backed servers use instead). release
// closes what the agent method opened; call it once the handshake is over.
func (c *credentials) methods() (m []ssh.AuthMethod, release func()) {
	release = func() {}
	if c.signer != nil {
		m = append(m, ssh.PublicKeys(c.signer))
	}
	if c.agentSocket != nil {
		ag := newAgentSource(*c.agentSocket, c.log)
		m = append(m, ssh.PublicKeysCallback(ag.signers))
		release = ag.release
	}
	if c.password != "" {
		pw := c.password
		m = append(m, ssh.Password(pw), ssh.KeyboardInteractive(
			func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	return m, release
}

// agentSource reaches the ssh-agent for one handshake: an agent restarted
// since the last one is picked up, and no socket stays open between
// handshakes.
type agentSource struct {
	socket string
	log    *slog.Logger
	mu     sync.Mutex
	conns  []net.Conn
}

func newAgentSource(socket string, log *slog.Logger) *agentSource {
	if socket == "" {
		socket = os.Getenv("SSH_AUTH_SOCK")
	}
	return &agentSource{socket: socket, log: log}
}

// signers lists the agent's keys. An unreachable agent offers none rather
// than failing: x/crypto would abort the whole authentication, password
// included.
func (a *agentSource) signers() ([]ssh.Signer, error) {
	if a.socket == "" {
		a.log.Warn("ssh: use_agent is set but no agent socket is configured (SSH_AUTH_SOCK is empty)")
		return nil, nil
	}
	conn, err := net.Dial("unix", a.socket)
	if err != nil {
		a.log.Warn("ssh: ssh-agent unreachable; offering no agent keys", "socket", a.socket, "err", err)
		return nil, nil
	}
	a.mu.Lock()
	a.conns = append(a.conns, conn)
	a.mu.Unlock()
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		a.log.Warn("ssh: ssh-agent did not list its keys", "socket", a.socket, "err", err)
		return nil, nil
	}
	return signers, nil
}

// release closes the agent connections opened for a finished handshake.
func (a *agentSource) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.conns {
		_ = c.Close()
	}
	a.conns = nil
}
