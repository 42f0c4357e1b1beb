package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestDanglingRemoved(t *testing.T) {
	m := New(prometheus.NewRegistry())
	m.DanglingRemoved("container", 2)
	m.DanglingRemoved("container", 0)
	m.DanglingRemoved("spool", 1)
	want := `
# HELP cronium_orchestrator_dangling_removed_total Job containers and SSH spools that no job owned, removed by the reconciler, by kind.
# TYPE cronium_orchestrator_dangling_removed_total counter
cronium_orchestrator_dangling_removed_total{kind="container"} 2
cronium_orchestrator_dangling_removed_total{kind="spool"} 1
`
	if err := testutil.CollectAndCompare(m.dangling.removed, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	m.DanglingRemoved("volume", 1)
	if got := testutil.ToFloat64(m.dangling.removed.WithLabelValues("other")); got != 1 {
		t.Errorf("an unknown kind counts as other: %v", got)
	}
}
