package ssh

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/cronium/orchestrator/executors"
)

// parseCost reads the cost words of an end frame, as remote.sh's cost
// wrote them: "cpu=<seconds> rss=<bytes>" (getrusage through python3) or
// "utime=<times> stime=<times>" (the shell's times builtin, e.g. 0m1.020000s).
// Unknown words are skipped and a figure that does not parse is left out:
// a server's odd shell must not turn into a wrong number.
func parseCost(words []string) executors.Cost {
	kv := make(map[string]string, len(words))
	for _, w := range words {
		if k, v, ok := strings.Cut(w, "="); ok {
			kv[k] = v
		}
	}
	var c executors.Cost
	if cpu, ok := kv["cpu"]; ok {
		if s, err := strconv.ParseFloat(cpu, 64); err == nil && s >= 0 && s < 1e12 {
			c.CPUSeconds, c.CPUMeasured = s, true
		}
		if b, err := strconv.ParseInt(kv["rss"], 10, 64); err == nil && b > 0 {
			c.PeakMemoryBytes = b
		}
		c.Source = executors.CostRusage
	} else {
		u, uok := shellTimes(kv["utime"])
		s, sok := shellTimes(kv["stime"])
		if uok && sok {
			c.CPUSeconds, c.CPUMeasured, c.Source = u+s, true, executors.CostShellTimes
		}
	}
	if !c.Measured() {
		return executors.Cost{}
	}
	return c
}

var timesValue = regexp.MustCompile(`^([0-9]{1,9})m([0-9]{1,9}(?:\.[0-9]{1,9})?)s$`)

// shellTimes reads one figure of the times builtin: 0m1.020000s (dash),
// 0m1.020s (bash).
func shellTimes(v string) (float64, bool) {
	m := timesValue.FindStringSubmatch(v)
	if m == nil {
		return 0, false
	}
	mins, _ := strconv.Atoi(m[1])
	sec, _ := strconv.ParseFloat(m[2], 64)
	return float64(mins)*60 + sec, true
}
