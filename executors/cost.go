package executors

// Cost is what an execution consumed, as far as it could be measured. A
// figure that was not measured is left out (its zero value with its flag
// unset), never reported as a measured zero.
type Cost struct {
	// PeakMemoryBytes is the most memory the job held at once; 0 when not
	// measured (no process runs in no memory). What counts depends on the
	// executor: see Source.
	PeakMemoryBytes int64
	// CPUSeconds is the user plus system CPU time of the job's processes;
	// meaningful only when CPUMeasured.
	CPUSeconds  float64
	CPUMeasured bool
	// Source says how the figures were taken, for a reader to weigh them:
	//
	//   - CostCgroupSampled: the container's cgroup, sampled while it ran
	//     (memory as counted against its limit, page cache and tmpfs
	//     included). Lower bounds: what happened after the last sample
	//     before the exit is not in them.
	//   - CostRusage: getrusage of the job's processes once they ended;
	//     memory is the largest peak resident set of one process (not of
	//     processes together).
	//   - CostShellTimes: the shell's times builtin; CPU only.
	//   - CostMixed: a multi-server job whose servers measured differently.
	Source string
}

// Cost sources.
const (
	CostCgroupSampled = "cgroup-sampled"
	CostRusage        = "rusage"
	CostShellTimes    = "shell-times"
	CostMixed         = "mixed"
)

// Measured reports whether any figure was measured.
func (c Cost) Measured() bool { return c.PeakMemoryBytes > 0 || c.CPUMeasured }

// SumCosts is the cost of a job that ran on several servers: the CPU
// seconds added up, the largest of the peaks (each server's memory is its
// own). A figure is kept only when every part measured it: a total with a
// part missing would read as the whole.
func SumCosts(parts []Cost) Cost {
	if len(parts) == 0 {
		return Cost{}
	}
	sum := Cost{CPUMeasured: true, PeakMemoryBytes: parts[0].PeakMemoryBytes, Source: parts[0].Source}
	for _, p := range parts {
		sum.CPUMeasured = sum.CPUMeasured && p.CPUMeasured
		sum.CPUSeconds += p.CPUSeconds
		if p.PeakMemoryBytes <= 0 || sum.PeakMemoryBytes <= 0 {
			sum.PeakMemoryBytes = 0
		} else {
			sum.PeakMemoryBytes = max(sum.PeakMemoryBytes, p.PeakMemoryBytes)
		}
		if p.Source != sum.Source {
			sum.Source = CostMixed
		}
	}
	if !sum.CPUMeasured {
		sum.CPUSeconds = 0
	}
	if !sum.Measured() {
		sum.Source = ""
	}
	return sum
}
