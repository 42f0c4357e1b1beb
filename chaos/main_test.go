package chaos_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cronium-chaos")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "cronium-orchestrator")
	if out, err := exec.Command("go", "build", "-o", binary, "../cmd/cronium-orchestrator").CombinedOutput(); err != nil {
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
