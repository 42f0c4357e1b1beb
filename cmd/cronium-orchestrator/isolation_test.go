package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/internal/testenv"
)

// A container job cannot reach the admin API: it listens on the host's
// loopback, which is not the container's. A listener on every address is
// reachable from the same job through the bridge's gateway, so the
// refusal is the admin API's address at work, not a network that is off.
func TestContainerJobCannotReachTheAdminAPI(t *testing.T) {
	testenv.Docker(t)
	admin := testenv.FreeAddr(t)
	_, adminPort, _ := net.SplitHostPort(admin)
	open, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	go func() {
		for {
			c, err := open.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	openPort := strings.TrimPrefix(open.Addr().String()[strings.LastIndex(open.Addr().String(), ":"):], ":")
	_, server, logs := startStandalone(t, "--docker-pull-policy", "never", "--docker-network-mode", "bridge",
		"--admin-listen", admin)

	script := `gw=$(ip route | awk '/^default/ { print $3 }')
try() { if (exec 3<>/dev/tcp/$1/$2) 2>/dev/null; then echo "$3 reachable"; else echo "$3 refused"; fi; }
try "$gw" ` + openPort + ` control
try 127.0.0.1 ` + adminPort + ` admin-loopback
try "$gw" ` + adminPort + ` admin-gateway
`
	path := filepath.Join(t.TempDir(), "probe.sh")
	os.WriteFile(path, []byte(script), 0o644)
	out, errOut, code := cli(t, nil, "submit", "--server", server, "--follow", path)
	if code != 0 {
		t.Fatalf("exit %d\nstdout %q\nstderr %q\nlogs:\n%s", code, out, errOut, logs.String())
	}
	if !strings.Contains(out, "control reachable") {
		t.Skipf("the job reaches nothing on the host through the bridge (a firewall?): %q", out)
	}
	for _, w := range []string{"admin-loopback refused", "admin-gateway refused"} {
		if !strings.Contains(out, w) {
			t.Errorf("want %q: %q", w, out)
		}
	}
}
