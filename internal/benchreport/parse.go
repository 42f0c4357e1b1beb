// Package benchreport reads `go test -bench` output and judges the
// performance targets of make bench against it: what was measured, the
// ratio to the baseline measured in the same run, PASS or MISS. A target
// whose figures are missing is never a PASS: it says why it was not
// measured.
package benchreport

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Result is one benchmark's figures: its iterations and every metric it
// printed, by unit ("ns/op", "p50-ms", "jobs/s", ...).
type Result struct {
	Name    string // without the -GOMAXPROCS suffix, e.g. BenchmarkContainers/c=4
	N       int
	Metrics map[string]float64
}

// Results are the benchmarks of one make bench run, by name, and the
// reasons given by those that failed or skipped (their --- FAIL or
// --- SKIP line and the lines logged under it).
type Results struct {
	Bench    map[string]Result
	Problems map[string]string
}

// NewResults is empty Results.
func NewResults() Results {
	return Results{Bench: map[string]Result{}, Problems: map[string]string{}}
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// trimProcs drops the -GOMAXPROCS suffix go test adds to a name.
func trimProcs(name string) string { return procsSuffix.ReplaceAllString(name, "") }

// Parse adds what r (plain go test -bench output, possibly several
// packages') holds to res. A benchmark's figures may come on a line of
// their own when it logged between its name and them.
func Parse(r io.Reader, res Results) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	pending := ""    // a benchmark name printed without its figures yet
	problem := ""    // the benchmark whose --- FAIL/SKIP message is being read
	var why []string // that message
	flush := func() {
		if problem != "" {
			res.Problems[problem] = strings.TrimSpace(strings.Join(why, " "))
		}
		problem, why = "", nil
	}
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "--- FAIL: Benchmark"), strings.HasPrefix(trimmed, "--- SKIP: Benchmark"):
			flush()
			f := strings.Fields(trimmed)
			problem = trimProcs(f[2])
			why = []string{strings.TrimSuffix(strings.ToLower(f[1]), ":")}
			continue
		case problem != "" && strings.HasPrefix(line, "    "):
			why = append(why, trimmed)
			continue
		}
		flush()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if strings.HasPrefix(f[0], "Benchmark") {
			if len(f) == 1 {
				pending = trimProcs(f[0])
				continue
			}
			if r, ok := figures(trimProcs(f[0]), f[1:]); ok {
				res.Bench[r.Name] = r
			}
			pending = ""
			continue
		}
		if pending != "" {
			if r, ok := figures(pending, f); ok {
				res.Bench[r.Name] = r
				pending = ""
			}
		}
	}
	flush()
	return sc.Err()
}

// figures reads "N value unit value unit ..."; ok is false when f is not
// that.
func figures(name string, f []string) (Result, bool) {
	if len(f) < 3 || len(f)%2 == 0 {
		return Result{}, false
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return Result{}, false
	}
	r := Result{Name: name, N: n, Metrics: map[string]float64{}}
	for i := 1; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Result{}, false
		}
		r.Metrics[f[i+1]] = v
	}
	return r, true
}
