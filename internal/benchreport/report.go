package benchreport

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Report is what make bench prints and writes to BENCHMARKS.md.
type Report struct {
	Machine  []string // "key: value" lines
	Results  Results
	Verdicts []Verdict
}

// rows is the table: one row per benchmark, by name, then one per
// benchmark that failed or skipped without figures.
func (r Report) rows() [][3]string {
	var names []string
	for n := range r.Results.Bench {
		names = append(names, n)
	}
	slices.Sort(names)
	var out [][3]string
	for _, n := range names {
		b := r.Results.Bench[n]
		out = append(out, [3]string{n, strconv.Itoa(b.N), metricsText(b.Metrics)})
	}
	var failed []string
	for n := range r.Results.Problems {
		if _, ok := r.Results.Bench[n]; !ok {
			failed = append(failed, n)
		}
	}
	slices.Sort(failed)
	for _, n := range failed {
		out = append(out, [3]string{n, "-", r.Results.Problems[n]})
	}
	return out
}

// metricsText lists a benchmark's metrics, ns/op first, as "value unit".
func metricsText(m map[string]float64) string {
	var units []string
	for u := range m {
		units = append(units, u)
	}
	slices.SortFunc(units, func(a, b string) int {
		if (a == "ns/op") != (b == "ns/op") {
			if a == "ns/op" {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(units))
	for _, u := range units {
		parts = append(parts, figure(m[u], u))
	}
	return strings.Join(parts, ", ")
}

// Text is the table and machine lines for a terminal; the target lines
// are printed after it.
func (r Report) Text() string {
	var b strings.Builder
	for _, l := range r.Machine {
		b.WriteString(l + "\n")
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tN\tfigures")
	for _, row := range r.rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", row[0], row[1], row[2])
	}
	tw.Flush()
	b.WriteString("\n")
	return b.String()
}

// Markdown is BENCHMARKS.md.
func (r Report) Markdown() string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\nWritten by `make bench` (`scripts/bench.sh`); the targets are issue 10's. " +
		"Each ratio is against a baseline measured in the same run.\n\n## Machine\n\n")
	for _, l := range r.Machine {
		b.WriteString("- " + l + "\n")
	}
	b.WriteString("\n## Figures\n\n| benchmark | N | figures |\n|---|---|---|\n")
	for _, row := range r.rows() {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", row[0], row[1], strings.ReplaceAll(row[2], "|", "\\|"))
	}
	b.WriteString("\n## Targets\n\n```\n")
	for _, v := range r.Verdicts {
		b.WriteString(v.Line() + "\n")
	}
	b.WriteString("```\n")
	return b.String()
}
