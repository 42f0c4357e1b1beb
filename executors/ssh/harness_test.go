package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"

	xssh "golang.org/x/crypto/ssh"

	"github.com/cronium/orchestrator/internal/testenv"
)

// The test sshd must not start "successfully" against someone else's SSH
// server on its port (a port picked free can be taken before sshd binds it).
func TestSSHDHarnessRefusesForeignServer(t *testing.T) {
	t.Parallel()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := xssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &xssh.ServerConfig{PasswordCallback: func(xssh.ConnMetadata, []byte) (*xssh.Permissions, error) {
		return nil, errors.New("no")
	}}
	cfg.AddHostKey(signer)
	l := serveEach(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		defer c.Close()
		_, _, _, _ = xssh.NewServerConn(c, cfg)
	})
	s, err := testenv.NewSSHD(l.Addr().(*net.TCPAddr).Port)
	switch {
	case errors.Is(err, testenv.ErrUnavailable):
		testenv.Unavailable(t, "%v", err)
	case err == nil:
		s.Close()
		t.Fatal("NewSSHD started on a port another SSH server holds")
	case !strings.Contains(err.Error(), "another host key"):
		t.Fatalf("err = %v, want a host key mismatch", err)
	}
	t.Logf("refused: %v", err)
}
