package docker

import (
	"context"
	"encoding/json"
	"io"
	"sync"

	"github.com/docker/docker/api/types/container"

	"github.com/cronium/orchestrator/executors"
)

// meter follows a running container's stats stream and keeps what the
// job's Cost needs. Once the container has exited its cgroup is gone and
// the stats are empty, so the figures must be taken while it runs: the
// daemon sends a sample about once a second to every stream of a container
// (one collector for all of them), so a stream costs the engine no extra
// reads of the cgroup beyond that.
//
// The figures are lower bounds (executors.CostCgroupSampled): the CPU time
// is the cgroup's total at the last sample, and the peak is the kernel's
// high-water mark (cgroup v1 max_usage) at the last sample, or on cgroup v2,
// which keeps none in these stats, the largest usage sampled. A job that
// ends before the first sample reports nothing.
type meter struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	// Written by the goroutine only, read after done.
	peak    uint64 // bytes
	cpu     uint64 // nanoseconds
	samples int
}

// startMeter opens the stats stream in a goroutine, so that the call does
// not delay the job; stop ends it. The stream follows neither ctx's
// cancellation (a stopped job's figures still count) nor the API timeout
// (it lasts as long as the container).
func (e *Executor) startMeter(ctx context.Context, id string) *meter {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m := &meter{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		r, err := e.api.ContainerStats(ctx, id, true)
		if err != nil {
			if ctx.Err() == nil {
				e.opts.Logger.Debug("no stats for the job's cost", "container_id", shortID(id), "error", err)
			}
			return
		}
		defer r.Body.Close()
		// Closing the body is what ends a read in progress.
		stopRead := context.AfterFunc(ctx, func() { r.Body.Close() })
		defer stopRead()
		m.read(r.Body)
	}()
	return m
}

// read keeps the figures of every sample until the stream ends.
func (m *meter) read(body io.Reader) {
	dec := json.NewDecoder(body)
	for {
		var s container.StatsResponse
		if err := dec.Decode(&s); err != nil {
			return
		}
		m.record(s)
	}
}

// record keeps one sample. A sample of a container that is not running
// (the daemon sends empty ones, with no read time) says nothing.
func (m *meter) record(s container.StatsResponse) {
	if s.Read.IsZero() || s.Read.Year() <= 1 {
		return
	}
	mem := s.MemoryStats
	if mem.Usage == 0 && mem.MaxUsage == 0 && s.CPUStats.CPUUsage.TotalUsage == 0 {
		return
	}
	m.peak = max(m.peak, mem.Usage, mem.MaxUsage)
	m.cpu = max(m.cpu, s.CPUStats.CPUUsage.TotalUsage)
	m.samples++
}

// stop ends the stream, waits for its goroutine and returns the cost
// measured. It may be called more than once, and on a nil meter.
func (m *meter) stop() executors.Cost {
	if m == nil {
		return executors.Cost{}
	}
	m.once.Do(func() {
		m.cancel()
		<-m.done
	})
	if m.samples == 0 {
		return executors.Cost{}
	}
	return executors.Cost{
		PeakMemoryBytes: int64(min(m.peak, 1<<62)),
		CPUSeconds:      float64(m.cpu) / 1e9,
		CPUMeasured:     true,
		Source:          executors.CostCgroupSampled,
	}
}
