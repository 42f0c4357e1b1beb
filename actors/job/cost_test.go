package job

import (
	"encoding/json"
	"testing"

	"github.com/cronium/orchestrator/executors"
)

func TestAddCost(t *testing.T) {
	for _, tc := range []struct {
		cost executors.Cost
		want string
	}{
		{executors.Cost{}, `{}`},
		{executors.Cost{PeakMemoryBytes: 52428800, CPUSeconds: 1.23456, CPUMeasured: true, Source: executors.CostCgroupSampled},
			`{"costSource":"cgroup-sampled","cpuSeconds":1.235,"peakMemoryBytes":52428800}`},
		// A CPU time of zero that was measured is said; one not measured is not.
		{executors.Cost{CPUMeasured: true, Source: executors.CostShellTimes}, `{"costSource":"shell-times","cpuSeconds":0}`},
		{executors.Cost{PeakMemoryBytes: 4096, Source: executors.CostRusage}, `{"costSource":"rusage","peakMemoryBytes":4096}`},
	} {
		m := map[string]any{}
		addCost(m, tc.cost)
		got, _ := json.Marshal(m)
		if string(got) != tc.want {
			t.Errorf("addCost(%+v) = %s, want %s", tc.cost, got, tc.want)
		}
	}
	if c := (State{}).cost(); c.Measured() {
		t.Errorf("cost of a job with no outcome: %+v", c)
	}
}
