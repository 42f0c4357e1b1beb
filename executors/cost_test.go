package executors

import "testing"

func TestSumCosts(t *testing.T) {
	rusage := Cost{PeakMemoryBytes: 100, CPUSeconds: 1, CPUMeasured: true, Source: CostRusage}
	cpuOnly := Cost{CPUSeconds: 2, CPUMeasured: true, Source: CostShellTimes}
	for _, tc := range []struct {
		name  string
		parts []Cost
		want  Cost
	}{
		{"none", nil, Cost{}},
		{"one", []Cost{rusage}, rusage},
		{"two alike", []Cost{rusage, {PeakMemoryBytes: 300, CPUSeconds: 0.5, CPUMeasured: true, Source: CostRusage}},
			Cost{PeakMemoryBytes: 300, CPUSeconds: 1.5, CPUMeasured: true, Source: CostRusage}},
		{"one without memory", []Cost{rusage, cpuOnly}, Cost{CPUSeconds: 3, CPUMeasured: true, Source: CostMixed}},
		{"one unmeasured", []Cost{rusage, {}}, Cost{}},
	} {
		if got := SumCosts(tc.parts); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
