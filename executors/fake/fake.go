// Package fake is a scripted executor for testing everything above the
// executors without Docker or SSH. Environment keys of the job script it:
//
//	FAKE_LINES=N          print "line 1".."line N" on stdout
//	FAKE_INTERVAL=10ms    wait between lines
//	FAKE_STDOUT=text      print text on stdout first (delivered, like all
//	                      stdout, one byte per write)
//	FAKE_STDERR=text      print text on stderr first
//	FAKE_SLEEP=1s         wait after the output, before exiting
//	FAKE_EXIT=3           exit status (default 0)
//	FAKE_ERROR=text       Run fails: the job could not run
//	FAKE_DROP_AFTER=N     the first Run returns a retryable error once N
//	                      lines were delivered (the "process" keeps going)
//	FAKE_UNREACHABLE=text every Run fails with a retryable error
//	FAKE_PANIC=text       Run panics (a bug in an executor)
//
// Like a container, an execution lives on its own: it keeps running when
// Run detaches, and a later Run with Resume attaches to it again.
package fake

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/cronium/orchestrator/executors"
)

// Executor keeps executions in memory, by execution id.
type Executor struct {
	mu    sync.Mutex
	execs map[string]*execution
	// Runs counts Run calls; Starts counts executions started.
	runs, starts int
	// abandoned counts Abandon calls; active and maxActive count
	// executions alive at once.
	abandoned, active, maxActive int
}

// Abandoned is the number of Abandon calls.
func (f *Executor) Abandoned() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.abandoned
}

// MaxActive is the most executions that were alive at the same time.
func (f *Executor) MaxActive() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxActive
}

// New returns an empty fake executor.
func New() *Executor { return &Executor{execs: map[string]*execution{}} }

type execution struct {
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every change
	stdout   []byte
	stderr   []byte
	exited   bool
	exitCode int
	started  time.Time
	kill     chan struct{}
	killOnce sync.Once
}

func (e *execution) update(f func()) {
	e.mu.Lock()
	f()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// Starts is the number of executions started (a resumed one counts once).
func (f *Executor) Starts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts
}

// Runs is the number of Run calls.
func (f *Executor) Runs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs
}

// Run implements executors.Executor.
func (f *Executor) Run(ctx context.Context, spec executors.Spec, out executors.Output) (executors.Result, error) {
	if msg := spec.Env["FAKE_PANIC"]; msg != "" {
		panic(msg)
	}
	if msg := spec.Env["FAKE_ERROR"]; msg != "" {
		return executors.Result{}, errors.New(msg)
	}
	if msg := spec.Env["FAKE_UNREACHABLE"]; msg != "" {
		f.mu.Lock()
		f.runs++
		f.mu.Unlock()
		return executors.Result{}, executors.Retryable(errors.New(msg))
	}
	f.mu.Lock()
	f.runs++
	first := f.runs == 1
	ex := f.execs[spec.ExecutionID]
	if ex == nil {
		ex = &execution{changed: make(chan struct{}), started: time.Now(), kill: make(chan struct{})}
		f.execs[spec.ExecutionID] = ex
		f.starts++
		f.active++
		f.maxActive = max(f.maxActive, f.active)
		go ex.play(spec.Env)
	}
	f.mu.Unlock()

	return f.follow(ctx, ex, spec, out, first)
}

// follow streams an execution's output from the resume offsets until it
// exits, times out, is cancelled or detached.
func (f *Executor) follow(ctx context.Context, ex *execution, spec executors.Spec, out executors.Output, first bool) (executors.Result, error) {
	dropAfter, _ := strconv.Atoi(spec.Env["FAKE_DROP_AFTER"])
	var sentOut, sentErr = spec.Resume.StdoutBytes, spec.Resume.StderrBytes
	lines := 0
	var deadline <-chan time.Time
	if spec.Timeout > 0 {
		t := time.NewTimer(time.Until(ex.started.Add(spec.Timeout)))
		defer t.Stop()
		deadline = t.C
	}
	for {
		ex.mu.Lock()
		newOut, newErr := ex.stdout[sentOut:], ex.stderr[sentErr:]
		exited, code, changed := ex.exited, ex.exitCode, ex.changed
		ex.mu.Unlock()
		if len(newErr) > 0 {
			out.Stderr.Write(newErr)
			sentErr += int64(len(newErr))
		}
		for _, b := range newOut {
			out.Stdout.Write([]byte{b})
			sentOut++
			if b == '\n' {
				lines++
				if first && dropAfter > 0 && lines == dropAfter {
					return executors.Result{}, executors.Retryable(errors.New("fake connection dropped"))
				}
			}
		}
		if exited {
			f.remove(spec.ExecutionID)
			return executors.Result{Exited: true, ExitCode: code, Timings: timings(ex.started)}, nil
		}
		select {
		case <-changed:
		case <-deadline:
			ex.stop()
			f.remove(spec.ExecutionID)
			return executors.Result{TimedOut: true, Reason: fmt.Sprintf("timed out after %s", spec.Timeout)}, nil
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), executors.ErrDetached) {
				return executors.Result{}, fmt.Errorf("fake: %w", executors.ErrDetached)
			}
			ex.stop()
			f.remove(spec.ExecutionID)
			return executors.Result{Cancelled: true, Reason: "cancelled"}, nil
		}
	}
}

// Abandon stops and forgets an execution.
func (f *Executor) Abandon(_ context.Context, spec executors.Spec) error {
	f.mu.Lock()
	f.abandoned++
	ex := f.execs[spec.ExecutionID]
	f.mu.Unlock()
	if ex != nil {
		ex.stop()
		f.remove(spec.ExecutionID)
	}
	return nil
}

func (f *Executor) remove(id string) {
	f.mu.Lock()
	if _, ok := f.execs[id]; ok {
		delete(f.execs, id)
		f.active--
	}
	f.mu.Unlock()
}

func (e *execution) stop() { e.killOnce.Do(func() { close(e.kill) }) }

// play is the "process": it writes its output over time and exits.
func (e *execution) play(env map[string]string) {
	n, _ := strconv.Atoi(env["FAKE_LINES"])
	interval, _ := time.ParseDuration(env["FAKE_INTERVAL"])
	sleep, _ := time.ParseDuration(env["FAKE_SLEEP"])
	code, _ := strconv.Atoi(env["FAKE_EXIT"])
	if s := env["FAKE_STDERR"]; s != "" {
		e.update(func() { e.stderr = append(e.stderr, s...) })
	}
	if s := env["FAKE_STDOUT"]; s != "" {
		e.update(func() { e.stdout = append(e.stdout, s...) })
	}
	wait := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-e.kill:
			return false
		}
	}
	for i := 1; i <= n; i++ {
		if interval > 0 && !wait(interval) {
			return
		}
		line := fmt.Sprintf("line %d\n", i)
		e.update(func() { e.stdout = append(e.stdout, line...) })
	}
	if sleep > 0 && !wait(sleep) {
		return
	}
	e.update(func() { e.exited, e.exitCode = true, code })
}

func timings(started time.Time) executors.Timings {
	now := time.Now()
	return executors.Timings{SetupStarted: started, SetupCompleted: started, ExecStarted: started, ExecCompleted: now}
}

var _ executors.Executor = (*Executor)(nil)
