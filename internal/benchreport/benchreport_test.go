package benchreport

import (
	"math"
	"regexp"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/cronium/orchestrator/daemon
cpu: AMD EPYC
BenchmarkPipeline-2   	    5000	   5509300 ns/op	       181.5 jobs/s	      2597 p50-ms
BenchmarkContainers/c=1-2         	      40	 412345678 ns/op	       350.2 p50-ms	       402.0 raw-p50-ms
BenchmarkContainers/c=4-2
    bench_test.go:12: a log line between the name and the figures
      40	 212345678 ns/op	       1.07e+03 p50-ms	       900.0 raw-p50-ms
--- FAIL: BenchmarkContainers/c=8
    bench_containers_test.go:99: job x: exit 1
    second line
--- SKIP: BenchmarkJobPooledConnection
    sshd.go:40: skipped, dependency missing: sshd
BenchmarkPickup/long-poll-2   	      40	   1 ns/op	 1.2 p50-ms
PASS
ok  	github.com/cronium/orchestrator/daemon	11.167s
`

func parsed(t *testing.T) Results {
	t.Helper()
	res := NewResults()
	if err := Parse(strings.NewReader(sample), res); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestParse(t *testing.T) {
	res := parsed(t)
	tests := []struct {
		bench, unit string
		want        float64
	}{
		{"BenchmarkPipeline", "jobs/s", 181.5},
		{"BenchmarkPipeline", "ns/op", 5509300},
		{"BenchmarkContainers/c=1", "raw-p50-ms", 402},
		{"BenchmarkContainers/c=4", "p50-ms", 1070},
		{"BenchmarkPickup/long-poll", "p50-ms", 1.2},
	}
	for _, tt := range tests {
		if got := res.Bench[tt.bench].Metrics[tt.unit]; got != tt.want {
			t.Errorf("%s %s = %v, want %v", tt.bench, tt.unit, got, tt.want)
		}
	}
	if n := res.Bench["BenchmarkContainers/c=4"].N; n != 40 {
		t.Errorf("N = %d, want 40", n)
	}
	if _, ok := res.Bench["BenchmarkContainers/c=8"]; ok {
		t.Error("a failed benchmark has figures")
	}
	for bench, want := range map[string]string{
		"BenchmarkContainers/c=8":      "fail bench_containers_test.go:99: job x: exit 1 second line",
		"BenchmarkJobPooledConnection": "skip sshd.go:40: skipped, dependency missing: sshd",
	} {
		if got := res.Problems[bench]; got != want {
			t.Errorf("problem of %s = %q, want %q", bench, got, want)
		}
	}
}

func TestMeetsAndRatio(t *testing.T) {
	tests := []struct {
		op      Op
		v, goal float64
		want    bool
	}{
		{AtMost, 1.10, 1.10, true},
		{AtMost, 1.11, 1.10, false},
		{AtLeast, 0.9, 0.9, true},
		{AtLeast, 0.89, 0.9, false},
		{AtMost, 0, 0, true},
		{AtMost, math.NaN(), 1, false},
		{AtLeast, math.Inf(1), 1, false},
	}
	for _, tt := range tests {
		if got := Meets(tt.op, tt.v, tt.goal); got != tt.want {
			t.Errorf("Meets(%v, %v, %v) = %v", tt.op, tt.v, tt.goal, got)
		}
	}
	if r, err := Ratio(3, 2); err != nil || r != 1.5 {
		t.Errorf("Ratio(3, 2) = %v, %v", r, err)
	}
	if _, err := Ratio(3, 0); err == nil {
		t.Error("Ratio(3, 0) gave no error")
	}
}

func TestJudge(t *testing.T) {
	res := parsed(t)
	res.Bench["BenchmarkZero"] = Result{Name: "BenchmarkZero", N: 1, Metrics: map[string]float64{"a": 1, "b": 0}}
	why := func(bench string) string {
		if strings.HasPrefix(bench, "BenchmarkAbsent") {
			return "no func BenchmarkAbsent in the tree"
		}
		return ""
	}
	c1, c4 := "BenchmarkContainers/c=1", "BenchmarkContainers/c=4"
	tests := []struct {
		name     string
		target   Target
		measured bool
		pass     bool
		line     string // a fragment of the target line
	}{
		{"absolute pass", absolute("p", Figure{"BenchmarkPickup/long-poll", "p50-ms"}, AtMost, 20, "ms"), true, true,
			"target p: 1.20 ms (goal ≤ 20 ms) PASS"},
		{"absolute miss", absolute("t", Figure{"BenchmarkPipeline", "jobs/s"}, AtLeast, 1000, "jobs/s"), true, false,
			"target t: 182 jobs/s (goal ≥ 1000 jobs/s) MISS"},
		{"ratio pass", ratio("r", Figure{c1, "p50-ms"}, Figure{c1, "raw-p50-ms"}, AtMost, 1.1), true, true,
			"target r: 0.87× (350 p50-ms against 402 raw-p50-ms)"},
		{"ratio miss", ratio("r", Figure{c4, "p50-ms"}, Figure{c4, "raw-p50-ms"}, AtMost, 1.1), true, false,
			"(goal ≤ 1.10× raw-p50-ms of BenchmarkContainers/c=4) MISS"},
		{"failed benchmark", ratio("f", Figure{"BenchmarkContainers/c=8", "p50-ms"}, Figure{c1, "p50-ms"}, AtMost, 1), false, false,
			"not measured (goal ≤ 1.00× p50-ms of BenchmarkContainers/c=1) MISS: BenchmarkContainers/c=8: fail"},
		{"skipped baseline", ratio("s", Figure{c1, "p50-ms"}, Figure{"BenchmarkJobPooledConnection", "ns/op"}, AtMost, 1), false, false,
			"MISS: baseline: BenchmarkJobPooledConnection: skip"},
		{"absent function", absolute("a", Figure{"BenchmarkAbsent/x", "p95-ms"}, AtMost, 200, "ms"), false, false,
			"MISS: BenchmarkAbsent/x: no func BenchmarkAbsent in the tree"},
		{"no such metric", absolute("m", Figure{"BenchmarkPipeline", "bytes/job"}, AtMost, 1, "B"), false, false,
			"MISS: BenchmarkPipeline printed no bytes/job"},
		{"zero baseline", ratio("z", Figure{"BenchmarkZero", "a"}, Figure{"BenchmarkZero", "b"}, AtMost, 1), false, false,
			"MISS: BenchmarkZero b: the baseline is zero"},
		{"not reported, no reason", absolute("n", Figure{"BenchmarkNothing", "x"}, AtMost, 1, ""), false, false,
			"MISS: BenchmarkNothing: no result"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Judge(tt.target, res, why)
			if v.Measured != tt.measured || v.Pass != tt.pass || !strings.Contains(v.Line(), tt.line) {
				t.Fatalf("measured=%v pass=%v %q; want measured=%v pass=%v and %q", v.Measured, v.Pass, v.Line(),
					tt.measured, tt.pass, tt.line)
			}
			if !v.Measured && v.Pass {
				t.Fatal("a target not measured passed")
			}
		})
	}
}

// Every target can be measured by some run, and names are unique.
func TestPlan(t *testing.T) {
	names := map[string]bool{}
	for _, tg := range Targets {
		if names[tg.Name] {
			t.Errorf("target %s twice", tg.Name)
		}
		names[tg.Name] = true
		figs := []Figure{tg.Value}
		if tg.Base != nil {
			figs = append(figs, *tg.Base)
		}
		for _, f := range figs {
			if _, ok := RunOf(f.Bench); !ok {
				t.Errorf("target %s: no run makes %s", tg.Name, f.Bench)
			}
		}
	}
	for _, r := range Runs {
		if _, err := regexp.Compile(r.Regex()); err != nil {
			t.Errorf("run %v: %v", r.Funcs, err)
		}
		if !regexp.MustCompile(`^\d+x$`).MatchString(r.Benchtime) || r.Timeout <= 0 {
			t.Errorf("run %v: benchtime %q, timeout %v", r.Funcs, r.Benchtime, r.Timeout)
		}
	}
	if r, ok := RunOf("BenchmarkPickup/idle"); !ok || r.Benchtime != "1x" {
		t.Errorf("BenchmarkPickup/idle runs in %+v", r)
	}
}

func TestReport(t *testing.T) {
	res := parsed(t)
	r := Report{Machine: []string{"cores: 2"}, Results: res,
		Verdicts: []Verdict{Judge(Targets[0], res, func(string) string { return "" })}}
	md := r.Markdown()
	for _, want := range []string{"- cores: 2", "| `BenchmarkContainers/c=1` | 40 | 412 ms/op, 350 p50-ms, 402 raw-p50-ms |",
		"| `BenchmarkContainers/c=8` | - | fail ", "target pickup-p50: 1.20 ms (goal ≤ 20 ms) PASS"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
