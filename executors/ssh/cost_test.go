package ssh

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/executors"
)

func TestParseCost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		words string
		want  executors.Cost
	}{
		{"", executors.Cost{}},
		{"cpu=1.250 rss=52428800",
			executors.Cost{CPUSeconds: 1.25, CPUMeasured: true, PeakMemoryBytes: 52428800, Source: executors.CostRusage}},
		{"cpu=0.000 rss=0", executors.Cost{CPUMeasured: true, Source: executors.CostRusage}},
		{"rss=1024 cpu=2", executors.Cost{CPUSeconds: 2, CPUMeasured: true, PeakMemoryBytes: 1024, Source: executors.CostRusage}},
		{"utime=0m1.020000s stime=0m0.010000s",
			executors.Cost{CPUSeconds: 1.03, CPUMeasured: true, Source: executors.CostShellTimes}},
		{"utime=2m0.500s stime=0m0.000s",
			executors.Cost{CPUSeconds: 120.5, CPUMeasured: true, Source: executors.CostShellTimes}},
		// What no known shell prints is left out, not read as zero.
		{"utime=0m stime=0.00s", executors.Cost{}},
		{"cpu=NaN rss=-5", executors.Cost{}},
		{"cpu=x rss=4096", executors.Cost{PeakMemoryBytes: 4096, Source: executors.CostRusage}},
		{"future=1 cpu=0.5", executors.Cost{CPUSeconds: 0.5, CPUMeasured: true, Source: executors.CostRusage}},
	} {
		got := parseCost(strings.Fields(tc.words))
		if got != tc.want && !(got.CPUMeasured && tc.want.CPUMeasured && near(got, tc.want)) {
			t.Errorf("parseCost(%q) = %+v, want %+v", tc.words, got, tc.want)
		}
	}
}

func near(a, b executors.Cost) bool {
	d := a.CPUSeconds - b.CPUSeconds
	a.CPUSeconds, b.CPUSeconds = 0, 0
	return a == b && d < 1e-9 && d > -1e-9
}

// The wrapper measures the job once it ends: CPU and, with python3 on the
// server (the test server has it), the peak resident set.
func TestCostOverSSH(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	e := newExecutor(t, testOptions(t, s))
	spec := bashSpec(t, `import time
held = bytearray(50 << 20)
for i in range(0, len(held), 4096):
    held[i] = 1
start = time.process_time()
while time.process_time() - start < 0.7:
    pass
print("done")
`, keyServer(s))
	spec.Script.Language = executors.Python
	res, c, err := run(t, e, spec)
	if err != nil || !res.Succeeded() {
		t.Fatalf("res=%+v err=%v stderr=%q", res, err, c.stderr.String())
	}
	cost := res.Cost
	t.Logf("cost %+v", cost)
	if !cost.CPUMeasured || cost.CPUSeconds < 0.5 || cost.PeakMemoryBytes < 50<<20 || cost.Source != executors.CostRusage {
		t.Errorf("cost %+v, want 0.5 s of CPU or more and a peak of 50 MB or more", cost)
	}
	assertNoSpool(t, s, spec)
}

// The wrapper's cost step with perl (the test server's PATH), with python3
// alone, and with neither (the shell's times: CPU only). The step runs in
// a subshell that has just reaped a child holding 20 MB and using well over
// the 10 ms tick the shell's times counts in: touching the pages alone
// took under a tick on a fast machine, and read as no CPU at all.
func TestCostFallbacks(t *testing.T) {
	t.Parallel()
	s := sharedSSHD(t)
	for _, tc := range []struct {
		name, path string
		want       string // the cost's source
		memory     bool
	}{
		{"perl", "$PATH", executors.CostRusage, true},
		{"python3", "$only", executors.CostRusage, true},
		{"neither", "/nonexistent", executors.CostShellTimes, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := remote(t, s, remoteLib+`
d=$(mktemp -d) && only=$(mktemp -d) || exit 1
ln -s "$(command -v python3)" "$only/python3"
echo 0 >"$d/status.tmp"
(
	/usr/bin/python3 -c 'b = bytearray(20 << 20); [b.__setitem__(i, 1) for i in range(0, len(b), 4096)]; sum(i * i for i in range(2000000))'
	PATH=`+tc.path+`
	cost
	/bin/mv -f "$d/status.tmp" "$d/status"
)
/bin/cat "$d/cost" "$d/status"
/bin/rm -rf "$d" "$only"
`)
			words := strings.Fields(out)
			if len(words) == 0 || words[len(words)-1] != "0" {
				t.Fatalf("no status after the cost step: %q", out)
			}
			cost := parseCost(words[:len(words)-1])
			if !cost.CPUMeasured || cost.CPUSeconds <= 0 || cost.Source != tc.want ||
				(cost.PeakMemoryBytes >= 20<<20) != tc.memory {
				t.Errorf("cost %+v from %q", cost, out)
			}
		})
	}
}

// BenchmarkCostMeasure compares a "true" job with the wrapper's cost step
// (python3 taking the wrapper's place) and without it (cost redefined to do
// nothing), interleaved so that both see the same load:
// go test -run '^$' -bench CostMeasure -benchtime 40x ./executors/ssh
func BenchmarkCostMeasure(b *testing.B) {
	s := sharedSSHD(b)
	opts := testOptions(b, s)
	opts.Logger = nil
	e, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	lib := remoteLib
	b.Cleanup(func() { remoteLib = lib })
	libs := [2]string{lib, lib + "\ncost() { return 0; }\n"}
	out := executors.Output{Stdout: io.Discard, Stderr: io.Discard}
	var took [2]time.Duration
	for i := 0; b.Loop(); i++ {
		for k := range 2 {
			j := (i + k) % 2
			remoteLib = libs[j]
			spec := executors.Spec{ExecutionID: "bench-cost-" + strconv.Itoa(i) + "-" + strconv.Itoa(j),
				Script: &executors.Script{Language: executors.Bash, Content: "true"}, Servers: []executors.Server{keyServer(s)}}
			start := time.Now()
			res, err := e.Run(context.Background(), spec, out)
			took[j] += time.Since(start)
			if err != nil || !res.Succeeded() || res.Cost.Measured() != (j == 0) {
				b.Fatalf("res=%+v err=%v", res, err)
			}
		}
	}
	n := float64(b.N) * float64(time.Millisecond)
	b.ReportMetric(float64(took[0])/n, "with-ms/op")
	b.ReportMetric(float64(took[1])/n, "without-ms/op")
}
