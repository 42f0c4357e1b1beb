package benchreport

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Figure names one metric of one benchmark.
type Figure struct {
	Bench string // e.g. BenchmarkContainers/c=4
	Unit  string // e.g. p95-ms, ns/op
}

func (f Figure) String() string { return f.Bench + " " + f.Unit }

// Op is how a measured value must relate to its goal.
type Op int

const (
	AtMost  Op = iota // value ≤ goal
	AtLeast           // value ≥ goal
)

// Target is one performance goal of make bench. Without a Base the value
// is judged as it is; with one, the ratio Value/Base is judged, both
// measured in the same run.
type Target struct {
	Name  string
	Value Figure
	Base  *Figure
	Op    Op
	Goal  float64
	Unit  string // how the value (not a ratio) reads, e.g. "ms"
}

// GoalText is the goal as the target line shows it, e.g. "≤ 1.10×".
func (t Target) GoalText() string {
	op := "≤"
	if t.Op == AtLeast {
		op = "≥"
	}
	if t.Base != nil {
		return op + " " + strconv.FormatFloat(t.Goal, 'f', 2, 64) + "× " + t.Base.Unit + " of " + t.Base.Bench
	}
	return op + " " + num(t.Goal) + " " + t.Unit
}

// Verdict is a target judged.
type Verdict struct {
	Target   Target
	Measured bool
	Value    float64 // the value, or the ratio
	Text     string  // the measured value as shown
	Pass     bool
	Reason   string // why it was not measured
}

// Line is the verdict's last-lines form:
// "target NAME: MEASURED (goal GOAL) PASS|MISS".
func (v Verdict) Line() string {
	status := "MISS"
	if v.Pass {
		status = "PASS"
	}
	if !v.Measured {
		return fmt.Sprintf("target %s: not measured (goal %s) %s: %s", v.Target.Name, v.Target.GoalText(), status, v.Reason)
	}
	return fmt.Sprintf("target %s: %s (goal %s) %s", v.Target.Name, v.Text, v.Target.GoalText(), status)
}

// Meets reports whether v satisfies op against goal. NaN and infinities
// never do.
func Meets(op Op, v, goal float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return false
	}
	if op == AtLeast {
		return v >= goal
	}
	return v <= goal
}

// ErrZeroBase is a baseline of zero: no ratio can be judged against it.
var ErrZeroBase = errors.New("the baseline is zero")

// Ratio is v/base.
func Ratio(v, base float64) (float64, error) {
	if base == 0 || math.IsNaN(base) || math.IsInf(base, 0) {
		return 0, ErrZeroBase
	}
	return v / base, nil
}

// Judge measures t against res. why explains a missing figure: for a
// benchmark name, the reason the run gave (a FAIL or SKIP message, a
// missing function, a run that did not finish), if any.
func Judge(t Target, res Results, why func(bench string) string) Verdict {
	v := Verdict{Target: t}
	val, err := lookup(t.Value, res, why)
	if err != nil {
		v.Reason = err.Error()
		return v
	}
	if t.Base == nil {
		v.Measured, v.Value = true, val
		v.Text = num(val) + " " + t.Unit
		v.Pass = Meets(t.Op, val, t.Goal)
		return v
	}
	base, err := lookup(*t.Base, res, why)
	if err != nil {
		v.Reason = "baseline: " + err.Error()
		return v
	}
	r, err := Ratio(val, base)
	if err != nil {
		v.Reason = fmt.Sprintf("%s: %v", t.Base, err)
		return v
	}
	v.Measured, v.Value = true, r
	v.Text = fmt.Sprintf("%.2f× (%s against %s)", r, figure(val, t.Value.Unit), figure(base, t.Base.Unit))
	v.Pass = Meets(t.Op, r, t.Goal)
	return v
}

func lookup(f Figure, res Results, why func(string) string) (float64, error) {
	r, ok := res.Bench[f.Bench]
	if !ok {
		for name := f.Bench; ; {
			if p, ok := res.Problems[name]; ok {
				return 0, fmt.Errorf("%s: %s", name, p)
			}
			i := strings.LastIndexByte(name, '/')
			if i < 0 {
				break
			}
			name = name[:i]
		}
		if w := why(f.Bench); w != "" {
			return 0, fmt.Errorf("%s: %s", f.Bench, w)
		}
		return 0, fmt.Errorf("%s: no result", f.Bench)
	}
	v, ok := r.Metrics[f.Unit]
	if !ok {
		return 0, fmt.Errorf("%s printed no %s", f.Bench, f.Unit)
	}
	return v, nil
}

// figure shows a value with its unit; ns/op as ms/op, which reads better
// for the slow benchmarks here.
func figure(v float64, unit string) string {
	if unit == "ns/op" {
		return num(v/1e6) + " ms/op"
	}
	return num(v) + " " + unit
}

// num shows a figure with about three significant digits.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100 || a == math.Trunc(a):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}
