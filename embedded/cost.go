package embedded

import (
	"encoding/json"
	"fmt"
)

// CostView is what the job consumed, as the orchestrator measured it and
// reported it in the /complete metrics (peakMemoryBytes, cpuSeconds,
// costSource). A figure it did not measure is absent, not zero.
type CostView struct {
	PeakMemoryBytes int64    `json:"peakMemoryBytes,omitempty"`
	CPUSeconds      *float64 `json:"cpuSeconds,omitempty"`
	// Source says how the figures were taken (executors.Cost): cgroup-sampled
	// (a container's cgroup, sampled while it ran: lower bounds), rusage or
	// shell-times (an SSH job's processes once they ended).
	Source string `json:"source,omitempty"`
}

// costOf reads the cost from a job's reported metrics; nil when there is
// none.
func costOf(metrics json.RawMessage) *CostView {
	var m struct {
		PeakMemoryBytes int64    `json:"peakMemoryBytes"`
		CPUSeconds      *float64 `json:"cpuSeconds"`
		CostSource      string   `json:"costSource"`
	}
	if len(metrics) == 0 || json.Unmarshal(metrics, &m) != nil {
		return nil
	}
	if m.PeakMemoryBytes <= 0 && m.CPUSeconds == nil {
		return nil
	}
	return &CostView{PeakMemoryBytes: max(m.PeakMemoryBytes, 0), CPUSeconds: m.CPUSeconds, Source: m.CostSource}
}

// String is the cost in one line for people: "peak memory 63.2 MiB, CPU
// 1.08 s (cgroup-sampled)".
func (c CostView) String() string {
	s := ""
	if c.PeakMemoryBytes > 0 {
		s = "peak memory " + formatMiB(c.PeakMemoryBytes)
	}
	if c.CPUSeconds != nil {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("CPU %.2f s", *c.CPUSeconds)
	}
	if c.Source != "" {
		s += " (" + c.Source + ")"
	}
	return s
}

func formatMiB(b int64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%d KiB", b>>10)
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
