package helpers

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkGetVariable is one cronium_getVariable as a script makes it:
// call.sh through the FIFOs and the relay to Serve and back. The
// baseline, BenchmarkSpawnShell, is the floor of any helper a script runs
// as a process: starting /bin/sh.
func BenchmarkGetVariable(b *testing.B) {
	svc, err := New(Config{Backend: withVar("alice", "K", "v"), ExecutionID: "bench",
		UserID: "alice"}, Saved{})
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), ".cronium")
	os.Mkdir(dir, 0o700)
	inst := svc.Install(dir, nil)
	for _, f := range inst.Files {
		os.WriteFile(filepath.Join(dir, f.Name), f.Data, f.Mode)
	}
	l := &local{dir: dir, svc: svc}
	l.relay(b, inst.Relay)
	call := filepath.Join(dir, "call.sh")
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command("/bin/sh", call, "getVariable", "K")
		cmd.Env = append(os.Environ(), EnvDir+"="+dir)
		if out, err := cmd.Output(); err != nil || string(out) != "v" {
			b.Fatalf("%q %v", out, err)
		}
	}
}

func BenchmarkSpawnShell(b *testing.B) {
	for range b.N {
		if err := exec.Command("/bin/sh", "-c", ":").Run(); err != nil {
			b.Fatal(err)
		}
	}
}
