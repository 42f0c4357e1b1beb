package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
)

// liveBenchInterval is the pause between the lines a benchmark job
// prints: a job that prints steadily, as a build log does.
const liveBenchInterval = 20 * time.Millisecond

// BenchmarkLiveLineLatency measures how soon a printed line reaches the
// live-lines server (POST /broadcast/log-line over real HTTP): from the
// moment the script printed it (a timestamp in the line itself) to the
// moment the server received it, through the executor, the job's output
// log, masking and the sender's queue. One job prints b.N lines, one every
// 20ms, on a daemon with the default configuration otherwise.
//
//   - container: a Bash job in a real container (Docker, the runtime
//     image), printing $EPOCHREALTIME; skipped without Docker outside CI.
//   - fake: an in-process executor writing the lines, for the orchestrator's
//     own share without Docker's log stream.
//
// Percentiles need samples: go test -run '^$' -bench LiveLineLatency -benchtime 200x ./daemon/
func BenchmarkLiveLineLatency(b *testing.B) {
	b.Run("container", func(b *testing.B) {
		cli := testenv.Docker(b)
		img := config.Default().Docker.ImageBash
		if _, err := cli.ImageInspect(b.Context(), img); err != nil {
			testenv.Unavailable(b, "image %s (run scripts/build-images.sh all): %v", img, err)
		}
		script := fmt.Sprintf(`for ((i = 0; i < %d; i++)); do echo "t=$EPOCHREALTIME"; sleep %g; done`,
			b.N, liveBenchInterval.Seconds())
		benchLiveLines(b, nil, script, func(c *config.Config) {
			c.Docker.PullPolicy = config.PullNever
			c.Docker.NetworkMode = "none"
		})
	})
	b.Run("fake", func(b *testing.B) {
		execs := map[jobspec.Kind]executors.Executor{jobspec.KindContainer: tickExecutor{n: b.N}}
		benchLiveLines(b, execs, "x")
	})
}

// benchLiveLines runs one job of script and reports the latencies of its
// lines, each "t=<seconds since the epoch>".
func benchLiveLines(b *testing.B, execs map[jobspec.Kind]executors.Executor, content string, opts ...func(*config.Config)) {
	ls := newLiveServer(b)
	store, url, token := daemontest.Backend(b)
	cfg := config.Default()
	cfg.API.URL, cfg.API.Token = url, token
	cfg.Orchestrator.StateDir = b.TempDir()
	cfg.HTTP.Listen, cfg.Admin.Listen = "", ""
	cfg.Logs.LiveURL = ls.url
	for _, o := range opts {
		o(&cfg)
	}
	d, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler), Executors: execs})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := d.Shutdown(); err != nil {
			b.Error(err)
		}
	})
	b.ResetTimer()
	if _, err := store.Submit(b.Context(), script("BASH", content)); err != nil {
		b.Fatal(err)
	}
	testenv.Eventually(b, testenv.Patience+time.Duration(b.N)*liveBenchInterval, "every line live", func() bool {
		return len(ls.got()) >= b.N
	})
	b.StopTimer()
	lat := make([]time.Duration, 0, b.N)
	for _, l := range ls.got() {
		s, ok := strings.CutPrefix(l.Line, "t=")
		f, err := strconv.ParseFloat(s, 64)
		if !ok || err != nil {
			b.Fatalf("line %q: want t=<seconds>", l.Line)
		}
		sec, frac := int64(f), f-float64(int64(f))
		lat = append(lat, l.at.Sub(time.Unix(sec, int64(frac*1e9))))
	}
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 95)), "p95-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(float64(d.LiveLines().Stats().DroppedTotal()), "dropped")
}

// tickExecutor prints n lines "t=<now>" one every liveBenchInterval, then
// exits 0.
type tickExecutor struct{ n int }

func (e tickExecutor) Run(ctx context.Context, spec executors.Spec, out executors.Output) (executors.Result, error) {
	start := time.Now()
	out.NotifyStarted()
	t := time.NewTicker(liveBenchInterval)
	defer t.Stop()
	for i := 0; i < e.n; i++ {
		now := time.Now()
		fmt.Fprintf(out.Stdout, "t=%d.%09d\n", now.Unix(), now.Nanosecond())
		select {
		case <-t.C:
		case <-ctx.Done():
			return executors.Result{Cancelled: true, Reason: "cancelled"}, nil
		}
	}
	end := time.Now()
	return executors.Result{Exited: true, Timings: executors.Timings{SetupStarted: start, SetupCompleted: start,
		ExecStarted: start, ExecCompleted: end}}, nil
}

func (tickExecutor) Abandon(context.Context, executors.Spec) error { return nil }
