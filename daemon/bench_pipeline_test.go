package daemon

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/executors/fake"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/messages"
)

// pipelineCapacity is jobs.max_concurrent in BenchmarkPipeline: enough
// slots that the pipeline, not the slot count, bounds the rate.
const pipelineCapacity = 1000

// BenchmarkPipeline measures the orchestrator's own overhead per job:
// b.N jobs that print "hi" on the scripted fake executor, against the
// embedded backend over real HTTP, default configuration but
// jobs.max_concurrent = pipelineCapacity. The clock runs from the first
// submission (the daemon idle, its poll held) to the last terminal
// update answered; the jobs are queued as fast as the store takes them,
// while the daemon claims them. jobs/s is b.N over that span; submit-jobs/s
// is how fast they were queued (the backend's side, not the daemon's).
//
//	go test -run '^$' -bench Pipeline -benchtime 3000x ./daemon/
func BenchmarkPipeline(b *testing.B) {
	be := newTimedBackend(b)
	benchDaemon(b, be, map[jobspec.Kind]executors.Executor{jobspec.KindContainer: fake.New()},
		func(c *config.Config) { c.Jobs.MaxConcurrent = pipelineCapacity })
	req := bashJob("echo hi", map[string]string{"FAKE_STDOUT": "hi\n"})
	b.ResetTimer()
	start := time.Now()
	ids := be.submitAll(req, b.N)
	submitted := time.Since(start)
	last := be.awaitEnded(ids, testenv.Patience+time.Duration(b.N)*10*time.Millisecond)
	b.StopTimer()
	span := last.Sub(start)
	b.ReportMetric(float64(b.N)/span.Seconds(), "jobs/s")
	b.ReportMetric(float64(b.N)/submitted.Seconds(), "submit-jobs/s")
	lat := be.spans(ids)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 95)), "p95-ms")
}

// inFlight is the number of jobs BenchmarkInFlight holds running at once;
// inFlightRamp bounds the time they may take to get running (make bench
// has ten minutes for everything).
const (
	inFlight     = 10_000
	inFlightRamp = 150 * time.Second
)

// BenchmarkInFlight holds inFlight jobs running at once on the scripted
// fake executor (each holds its first byte of output until all are
// running), against the embedded backend over real HTTP, default
// configuration but jobs.max_concurrent = inFlight. bytes/job is the
// growth of the heap and goroutine stacks (after a GC) from the idle
// daemon to all jobs running, per job: an upper bound of the
// orchestrator's share, since the in-process backend and fake executor
// count in it too. Then it lets them end, and goroutines-left is how many
// more goroutines there are once every job ended and the daemon is idle
// again than before the first job, not counting the goroutines of
// keep-alive HTTP connections, which the transport pools by design (see
// ownGoroutines). jobs/s is how fast the jobs got
// running (submissions included). Each iteration is one such run:
//
//	go test -run '^$' -bench InFlight -benchtime 1x ./daemon/
func BenchmarkInFlight(b *testing.B) {
	for range b.N {
		perJob, left, rate := inFlightRun(b)
		b.ReportMetric(perJob, "bytes/job")
		b.ReportMetric(float64(left), "goroutines-left")
		b.ReportMetric(rate, "jobs/s")
	}
}

func inFlightRun(b *testing.B) (perJob float64, left int, rate float64) {
	b.StopTimer()
	be := newTimedBackend(b)
	exec := daemontest.NewFake()
	d := benchDaemon(b, be, map[jobspec.Kind]executors.Executor{jobspec.KindContainer: exec},
		func(c *config.Config) { c.Jobs.MaxConcurrent = inFlight })
	// Idle: the first poll held, nothing else going on.
	time.Sleep(500 * time.Millisecond)
	g0, m0 := ownGoroutines(settledGoroutines()), memInUse()
	req := bashJob("echo hi", map[string]string{"FAKE_STDOUT": "hi\n", "TEST_HOLD_AFTER": "0"})
	b.StartTimer()
	start := time.Now()
	ids := be.submitAll(req, inFlight)
	for exec.Holding() < inFlight {
		if time.Since(start) > inFlightRamp {
			b.Fatalf("only %d of %d jobs running after %s (%.0f jobs/s)", exec.Holding(), inFlight,
				inFlightRamp, float64(exec.Holding())/time.Since(start).Seconds())
		}
		time.Sleep(10 * time.Millisecond)
	}
	rate = inFlight / time.Since(start).Seconds()
	b.StopTimer()
	m1 := memInUse()
	perJob = float64(int64(m1)-int64(m0)) / inFlight
	exec.Release()
	be.awaitEnded(ids, testenv.Patience)
	testenv.Eventually(b, testenv.Patience, "every job's end to be handled", func() bool {
		v, err := d.Engine().Request(d.Supervisor(), messages.ListJobs{}, testenv.Patience).Result()
		return err == nil && len(v.(messages.JobList).Jobs) == 0
	})
	left = ownGoroutines(settledGoroutines()) - g0
	return perJob, max(left, 0), rate
}

// ownGoroutines is n less the goroutines of pooled HTTP connections
// (keep-alive connections between the daemon's client and the in-process
// backend: two on the client's side, one or two on the server's), which
// the transport keeps idle up to its limit, by design. n is the total
// the caller saw; the count is taken again and corrected by the same
// difference.
func ownGoroutines(n int) int {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	pooled := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, c := range []string{"net/http.(*Transport).dialConn", "net/http.(*Server).Serve",
			"net/http.(*connReader).startBackgroundRead"} {
			if strings.Contains(g, "created by "+c) {
				pooled++
				break
			}
		}
	}
	return n - pooled
}

// memInUse is the heap and goroutine stacks in use after a collection.
func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// settledGoroutines waits up to 10s for the goroutine count to stop
// changing for a second and returns it.
func settledGoroutines() int {
	deadline := time.Now().Add(10 * time.Second)
	n, stable := runtime.NumGoroutine(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m != n {
			n, stable = m, time.Now()
		}
		if time.Since(stable) > time.Second {
			break
		}
	}
	return n
}
