package ssh

import (
	"net"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/secret"
)

// serveAgent runs an in-memory ssh-agent holding key on a unix socket.
func serveAgent(t *testing.T, key string) string {
	t.Helper()
	raw, err := ssh.ParseRawPrivateKey([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	kr := agent.NewKeyring()
	if err := kr.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	serveEach(t, "unix", sock, func(c net.Conn) {
		defer c.Close()
		_ = agent.ServeAgent(kr, c)
	})
	return sock
}

func TestAgentAuthentication(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	srv := executors.Server{Name: "box", Host: s.Host, Port: s.Port, Username: s.User}

	opts := testOptions(t, s)
	opts.UseAgent, opts.AgentSocket = true, serveAgent(t, s.Key)
	if res, _, err := run(t, newExecutor(t, opts), bashSpec(t, "true", srv)); err != nil || !res.Succeeded() {
		t.Fatalf("agent key: res=%+v err=%v", res, err)
	}

	// A dead agent must not stand in the way of the password.
	opts = testOptions(t, s)
	opts.UseAgent, opts.AgentSocket = true, filepath.Join(t.TempDir(), "gone.sock")
	srv.Password = secret.Value(s.Password)
	if res, _, err := run(t, newExecutor(t, opts), bashSpec(t, "true", srv)); err != nil || !res.Succeeded() {
		t.Fatalf("dead agent + password: res=%+v err=%v", res, err)
	}
}
