package testenv

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHDImage is the image with Debian's OpenSSH server, procps, python3 and
// nodejs (scripts/build-images.sh debian). It holds no host keys.
const SSHDImage = "cronium/test-sshd:local"

// ErrUnavailable wraps a missing test dependency (docker, the image).
var ErrUnavailable = errors.New("test dependency unavailable")

// SSHDUser is the account the test server creates.
const SSHDUser = "cronium"

// SSHD is a real OpenSSH server in a container on the host network,
// listening on 127.0.0.1:Port with a host key generated at start. The
// container's init is PID 1 (not sshd), so sshd can be killed, stopped
// and restarted while jobs it launched keep running.
type SSHD struct {
	Host, Addr string
	Port       int
	User       string
	Password   string
	// Key is an unencrypted OpenSSH-format ed25519 key, PEMKey a PKCS#1
	// PEM RSA key, EncryptedKey an OpenSSH-format ed25519 key encrypted
	// with Passphrase; all are authorized for User.
	Key, PEMKey, EncryptedKey, Passphrase string
	HostKey                               ssh.PublicKey

	container string
	frozen    *frozenPIDs // shared by copies of the SSHD
}

// frozenPIDs are the pids StopConnections stopped.
type frozenPIDs struct {
	mu   sync.Mutex
	pids []string
}

// StartSSHD starts a server on port (0 picks a free one) and removes it
// when the test ends. It skips the test, or fails it in CI, when docker or
// the image is missing.
func StartSSHD(t testing.TB, port int) *SSHD {
	t.Helper()
	s, err := NewSSHD(port)
	if errors.Is(err, ErrUnavailable) {
		Unavailable(t, "%v", err)
		return nil
	}
	if err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewSSHD is StartSSHD for servers shared by several tests (TestMain):
// the caller closes it.
func NewSSHD(port int) (*SSHD, error) {
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, fmt.Errorf("%w: docker CLI: %v", ErrUnavailable, err)
	}
	if out, err := docker("image", "inspect", "--format", "{{.Id}}", SSHDImage); err != nil {
		return nil, fmt.Errorf("%w: image %s (scripts/build-images.sh debian): %v %s", ErrUnavailable, SSHDImage, err, out)
	}
	s := &SSHD{Host: "127.0.0.1", User: SSHDUser, Password: "pw-" + randHex(8), Passphrase: "pp-" + randHex(8),
		frozen: &frozenPIDs{}}
	id, err := docker("run", "-d", "--rm", "--init", "--network", "host", "--label", "cronium-test=sshd",
		SSHDImage, "sleep", "infinity")
	if err != nil {
		return nil, fmt.Errorf("docker run: %v: %s", err, id)
	}
	s.container = strings.TrimSpace(id)
	if err := s.provision(); err != nil {
		s.Close()
		return nil, err
	}
	// A free port can be taken by someone else before sshd binds it (other
	// test processes pick ports too): then try another.
	for attempt := 1; ; attempt++ {
		p := port
		if p == 0 {
			if p, err = FreePort(); err != nil {
				s.Close()
				return nil, err
			}
		}
		s.Port, s.Addr = p, net.JoinHostPort(s.Host, strconv.Itoa(p))
		err := s.Start()
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortTaken) || port != 0 || attempt == 5 {
			s.Close()
			return nil, err
		}
		_ = s.KillSSHD()
	}
}

// provision makes the host key, the user and its authorized keys.
func (s *SSHD) provision() error {
	pubs, err := s.makeClientKeys()
	if err != nil {
		return err
	}
	script := `set -e
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
useradd -m -s /bin/bash ` + s.User + `
echo '` + s.User + `:` + s.Password + `' | chpasswd
h=/home/` + s.User + `/.ssh
mkdir -p $h && cat >$h/authorized_keys && chown -R ` + s.User + ` $h && chmod 700 $h && chmod 600 $h/authorized_keys
cat /etc/ssh/ssh_host_ed25519_key.pub`
	out, err := s.execIn(pubs, script)
	if err != nil {
		return fmt.Errorf("provision sshd container: %v: %s", err, out)
	}
	s.HostKey, _, _, _, err = ssh.ParseAuthorizedKey([]byte(out))
	if err != nil {
		return fmt.Errorf("parse host key %q: %v", out, err)
	}
	return nil
}

// makeClientKeys fills Key, EncryptedKey and PEMKey and returns their
// authorized_keys lines.
func (s *SSHD) makeClientKeys() ([]byte, error) {
	var auth bytes.Buffer
	for _, encrypted := range []bool{false, true} {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		var block *pem.Block
		if encrypted {
			block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(s.Passphrase))
			s.EncryptedKey = string(pem.EncodeToMemory(block))
		} else {
			block, err = ssh.MarshalPrivateKey(priv, "")
			s.Key = string(pem.EncodeToMemory(block))
		}
		if err != nil {
			return nil, err
		}
		sp, _ := ssh.NewPublicKey(pub)
		auth.Write(ssh.MarshalAuthorizedKey(sp))
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s.PEMKey = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}))
	sp, _ := ssh.NewPublicKey(&rk.PublicKey)
	auth.Write(ssh.MarshalAuthorizedKey(sp))
	return auth.Bytes(), nil
}

// errPortTaken means another process listens on the port sshd was to use.
var errPortTaken = errors.New("port taken")

// Start starts the sshd listener (again) and waits until it answers with
// the server's own host key: a listener that presents another key, or an
// sshd of ours that died (it could not bind), means someone else holds the
// port.
//
// It polls for those outcomes; nothing but them decides: a slow machine
// only makes the wait longer, up to Patience, which only a server that
// never comes up runs out of.
func (s *SSHD) Start() error {
	args := []string{"exec", "-d", s.container, "/usr/sbin/sshd", "-D", "-e",
		"-o", "ListenAddress=" + s.Addr, "-o", "HostKey=/etc/ssh/ssh_host_ed25519_key",
		"-o", "UsePAM=no", "-o", "PasswordAuthentication=yes", "-o", "LogLevel=ERROR", "-o", "MaxStartups=100"}
	if out, err := docker(args...); err != nil {
		return fmt.Errorf("start sshd: %v: %s", err, out)
	}
	deadline := time.Now().Add(Patience)
	for probes := 1; ; probes++ {
		switch s.probe() {
		case probeOurs:
			return nil
		case probeOther:
			return fmt.Errorf("sshd on %s: %w: the listener there presents another host key", s.Addr, errPortTaken)
		}
		// Nothing answers yet: is our sshd still there? (docker exec -d
		// returned once it was started, so it shows up unless it exited.)
		if probes%10 == 0 {
			running, err := s.listenerRunning()
			if err != nil {
				return err
			}
			if !running {
				return fmt.Errorf("sshd on %s: %w: sshd is not running (it could not bind the port)", s.Addr, errPortTaken)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd on %s did not answer within %s", s.Addr, Patience)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listenerRunning reports whether the sshd Start launched on Addr runs.
// Only pgrep's own "nothing matched" (exit status 1) says it does not; a
// failing docker exec is an error, not an answer.
func (s *SSHD) listenerRunning() (bool, error) {
	out, err := docker("exec", s.container, "pgrep", "-f", "ListenAddress="+s.Addr)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return false, nil
	}
	return false, fmt.Errorf("sshd on %s: look for the sshd process: %v: %s", s.Addr, err, out)
}

type probeResult int

const (
	probeDown  probeResult = iota // nothing answers (yet), or not SSH
	probeOurs                     // our host key; authentication may fail
	probeOther                    // an SSH server with another host key
)

// probe runs an SSH handshake against Addr, without credentials. Its
// timeouts are generous: a probe that runs out of them only means "not
// yet", and the next one tries again.
func (s *SSHD) probe() probeResult {
	nc, err := net.DialTimeout("tcp", s.Addr, 10*time.Second)
	if err != nil {
		return probeDown
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	var sawKey bool
	var keyErr error
	fixed := ssh.FixedHostKey(s.HostKey)
	cfg := &ssh.ClientConfig{User: s.User, HostKeyCallback: func(host string, addr net.Addr, key ssh.PublicKey) error {
		sawKey, keyErr = true, fixed(host, addr, key)
		return keyErr
	}}
	c, _, _, err := ssh.NewClientConn(nc, s.Addr, cfg)
	switch {
	case err == nil:
		_ = c.Close()
		return probeOurs
	case sawKey && keyErr == nil:
		return probeOurs // rejected without credentials: fine
	case sawKey:
		return probeOther
	}
	return probeDown
}

// KillSSHD kills every sshd process, the listener and each connection's:
// connections drop at once, processes they started keep running. It
// returns once they have exited, so that their sockets are closed (the
// port is free for Start) however slow the machine.
func (s *SSHD) KillSSHD() error {
	return s.signalSSHD("KILL", false)
}

// StopConnections freezes (SIGSTOP) the sshd processes serving
// connections; the listener keeps accepting. ContinueConnections undoes it.
//
// A process found as sshd may exec the user's shell before the STOP lands
// (a session being opened): Continue signals the processes Stop stopped,
// whatever they are called by then, so that none stays stopped.
func (s *SSHD) StopConnections() error {
	out, err := s.signalSSHDOut("STOP", true)
	s.frozen.mu.Lock()
	s.frozen.pids = strings.Fields(out)
	s.frozen.mu.Unlock()
	return err
}

func (s *SSHD) ContinueConnections() error {
	s.frozen.mu.Lock()
	stopped := s.frozen.pids
	s.frozen.pids = nil
	s.frozen.mu.Unlock()
	if len(stopped) > 0 {
		_, _ = docker(append([]string{"exec", s.container, "kill", "-s", "CONT"}, stopped...)...)
	}
	return s.signalSSHD("CONT", true)
}

// KillConnections kills (SIGKILL) the sshd processes serving connections,
// as a network cut would end them; the listener keeps accepting.
func (s *SSHD) KillConnections() error { return s.signalSSHD("KILL", true) }

// signalSSHD sends sig to sshd's processes. After KILL it waits until
// each has exited: gone, or a zombie (whose sockets are closed already).
func (s *SSHD) signalSSHD(sig string, connectionsOnly bool) error {
	_, err := s.signalSSHDOut(sig, connectionsOnly)
	return err
}

// signalSSHDOut is signalSSHD; it returns the pids signalled.
func (s *SSHD) signalSSHDOut(sig string, connectionsOnly bool) (string, error) {
	script := `l=$(pgrep -f '^sshd: .*\[listener\]' || true)
sent=
for p in $(pgrep -x sshd); do
	[ "$p" = "$l" ] && [ "$1" = yes ] && continue
	kill -s "$0" "$p" 2>/dev/null && sent="$sent $p"
done
echo $sent
[ "$0" = KILL ] || exit 0
for p in $sent; do
	while st=$(ps -o stat= -p "$p"); do
		case $(echo $st) in Z*) break ;; esac
		sleep 0.05
	done
done`
	only := "no"
	if connectionsOnly {
		only = "yes"
	}
	out, err := docker("exec", s.container, "sh", "-c", script, sig, only)
	if err != nil {
		return "", fmt.Errorf("signal sshd %s: %v: %s", sig, err, out)
	}
	return out, nil
}

// Exec runs a shell script as root in the server's container and returns
// its combined output.
func (s *SSHD) Exec(script string) (string, error) {
	return s.execIn(nil, script)
}

func (s *SSHD) execIn(stdin []byte, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "exec", "-i", s.container, "sh", "-c", script)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// KnownHostsLine is the server's known_hosts entry.
func (s *SSHD) KnownHostsLine() string {
	return knownhosts.Line([]string{s.Addr}, s.HostKey)
}

// Close removes the container.
func (s *SSHD) Close() {
	if s.container != "" {
		_, _ = docker("rm", "-f", s.container)
		s.container = ""
	}
}

// FreePort returns a loopback TCP port nothing listens on right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return string(out), err
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
