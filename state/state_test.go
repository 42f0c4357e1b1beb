package state

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestOrchestratorIDIsStableAcrossRestarts(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	first, prev, err := d.OrchestratorID("")
	if err != nil || prev != "" || !strings.HasPrefix(first, "orch-") {
		t.Fatalf("generated %q prev %q err %v", first, prev, err)
	}
	// A second process start with the same directory gets the same id.
	if d, err = Open(d.Path); err != nil {
		t.Fatal(err)
	}
	second, prev, err := d.OrchestratorID("")
	if err != nil || second != first || prev != "" {
		t.Fatalf("second start got %q (prev %q, err %v), want %q", second, prev, err, first)
	}
	// A configured id wins and is kept; the old one is reported.
	conf, prev, err := d.OrchestratorID("orch-configured")
	if err != nil || conf != "orch-configured" || prev != first {
		t.Fatalf("configured: got %q prev %q err %v", conf, prev, err)
	}
	third, _, _ := d.OrchestratorID("")
	if third != "orch-configured" {
		t.Fatalf("configured id not kept: %q", third)
	}
}
