package job

import (
	"math"

	"github.com/cronium/orchestrator/executors"
)

// cost is what the job's execution consumed, as its executor measured it:
// that of the execution whose result the job reports (a retried job's
// earlier tries are not in it).
func (s State) cost() executors.Cost {
	if s.Outcome == nil {
		return executors.Cost{}
	}
	return s.Outcome.Result.Cost
}

// addCost puts the measured figures into the /complete metrics. A figure
// that was not measured is left out: a zero would read as a measurement.
func addCost(m map[string]any, c executors.Cost) {
	if c.PeakMemoryBytes > 0 {
		m["peakMemoryBytes"] = c.PeakMemoryBytes
	}
	if c.CPUMeasured {
		m["cpuSeconds"] = math.Round(c.CPUSeconds*1000) / 1000
	}
	if c.Measured() {
		m["costSource"] = c.Source
	}
}

// observeCost reports the job's cost to the metrics, once: the completion
// it goes with is built once.
func (a *Actor) observeCost(st State) {
	c := st.cost()
	if a.deps.Observer == nil || !c.Measured() {
		return
	}
	r := a.run
	r.mu.Lock()
	kind := "none"
	if r.plan != nil {
		kind = string(r.plan.Kind)
	}
	r.mu.Unlock()
	a.deps.Observer.JobCost(kind, c)
}
