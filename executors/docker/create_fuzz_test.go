package docker

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/jobspec"
)

// Docker's rule for container names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// FuzzPlan takes arbitrary job JSON the way the orchestrator does:
// decoded, planned by jobspec, then turned into a container configuration.
// Planning never panics, is deterministic, fails only with ErrInvalidSpec,
// and what it plans is within the limits Docker and the kernel accept.
func FuzzPlan(f *testing.F) {
	for _, s := range []string{
		`{"id":"job_1","execution":{"script":{"type":"BASH","content":"echo hi"}}}`,
		`{"id":"j","execution":{"script":{"type":"PYTHON","content":"print(1)","workingDirectory":"sub/../x"},"timeout":1.5,
		  "environment":{"HOME":"/custom","CRONIUM_INPUT_FILE":"/nope","PYTHONUNBUFFERED":"0","N":7},"inputData":{"a": 1}}}`,
		`{"id":"j","execution":{"script":{"type":"NODEJS","content":"1","workingDirectory":"/work/../etc"}}}`,
		`{"id":"j","execution":{"script":{"type":"BASH","content":"x","workingDirectory":"/workshop"}}}`,
		`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"environment":{"A=B":"1"}}}`,
		`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"environment":{"":"1"}}}`,
		`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"environment":{"A":"a\u0000b"}}}`,
		`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"timeout":9.2e18}}`,
		`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"timeout":1e30}}`,
		// Within 15s of the int64 limit: backstop(timeout+grace+slack) wraps negative unless jobspec caps the timeout.
		`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"timeout":9.22337203685e18}}`,
		`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"timeout":"NaN"}}`,
		`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},
		  "resources":{"cpuLimit":1e308,"memoryLimit":-1,"diskLimit":9223372036854775807,"pidsLimit":1}}}`,
		`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"resources":{"cpuLimit":1e-300,"memoryLimit":1}}}`,
		`{"id":"job with spaces/and*globs","execution":{"script":{"type":"bash","content":"x"}}}`,
		`{"id":"` + strings.Repeat("é", 60) + `","execution":{"script":{"type":"bash","content":"x"}}}`,
	} {
		f.Add([]byte(s))
	}
	for _, name := range []string{"container-job.json", "ssh-job.json"} {
		b, err := os.ReadFile("../../backend/testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	o, err := Options{OrchestratorID: "orch-1"}.withDefaults()
	if err != nil {
		f.Fatal(err)
	}
	e := newExecutor(o, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var job backend.Job
		if json.Unmarshal(raw, &job) != nil {
			return
		}
		execID := jobspec.NewExecutionID(job.ID, time.Unix(0, 1761141791512000000))
		jp, err := jobspec.Build(job, execID, time.Hour)
		if err != nil || jp.Kind != jobspec.KindContainer {
			return
		}
		p, err := e.plan(jp.Spec)
		again, err2 := e.plan(jp.Spec)
		if !reflect.DeepEqual(p, again) || !reflect.DeepEqual(err, err2) {
			t.Fatalf("plan is not deterministic: %v, %v", err, err2)
		}
		if err != nil {
			if !errors.Is(err, executors.ErrInvalidSpec) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		checkContainerPlan(t, e, jp.Spec, p)
	})
}

func checkContainerPlan(t *testing.T, e *Executor, spec executors.Spec, p *plan) {
	t.Helper()
	c, h := p.config, p.host
	if !validName.MatchString(p.name) || p.name != containerName(spec.ExecutionID) {
		t.Fatalf("container name %q", p.name)
	}
	if c.Labels[LabelJob] != spec.JobID || c.Labels[LabelExecution] != spec.ExecutionID {
		t.Fatalf("labels %v", c.Labels)
	}
	ep := c.Entrypoint
	if len(ep) != 6 || ep[0] != "/bin/sh" || ep[2] != bootstrap {
		t.Fatalf("entrypoint %q", ep)
	}
	if dir := ep[4]; dir != workDir && !strings.HasPrefix(dir, workDir+"/") || path.Clean(dir) != dir {
		t.Fatalf("script directory %q", dir)
	}
	// The backstop is whole seconds the bootstrap hands to timeout(1): "0"
	// (none) for a job without a timeout, else no sooner than the timeout.
	limit, err := strconv.ParseInt(ep[5], 10, 64)
	switch {
	case err != nil || limit < 0:
		t.Fatalf("backstop %q for timeout %s", ep[5], spec.Timeout)
	case spec.Timeout <= 0 && limit != 0:
		t.Fatalf("backstop %d without a timeout", limit)
	case spec.Timeout > 0 && float64(limit) < spec.Timeout.Seconds():
		t.Fatalf("backstop %ds fires before the timeout %s", limit, spec.Timeout)
	}
	if want := append(slices.Clone(interpreters[spec.Script.Language]), filesDir+"/script"+spec.Script.Language.FileExt()); !slices.Equal(c.Cmd, want) {
		t.Fatalf("cmd %q, want %q", c.Cmd, want)
	}
	checkEnv(t, spec, c.Env)
	o := e.opts
	if h.Memory != h.MemorySwap || h.Memory < minMemory || h.Memory > max(o.MaxMemory, minMemory) {
		t.Fatalf("memory %d swap %d", h.Memory, h.MemorySwap)
	}
	if lo, hi := int64(math.Round(minCPUs*1e9)), int64(math.Round(max(o.MaxCPUs, minCPUs)*1e9)); h.NanoCPUs < lo || h.NanoCPUs > hi {
		t.Fatalf("nano cpus %d not in [%d, %d]", h.NanoCPUs, lo, hi)
	}
	if h.PidsLimit == nil || *h.PidsLimit < minPids || *h.PidsLimit > max(o.MaxPids, minPids) {
		t.Fatalf("pids %v", h.PidsLimit)
	}
	if len(p.files) < 2 || string(p.files[0].data) != spec.Script.Content || string(p.files[1].data) != string(spec.InputJSON()) {
		t.Fatalf("files %+v", p.files)
	}
}

// checkEnv: names are unique and valid, values within the kernel's limits,
// the fixed variables win, and every job variable arrives unless a fixed
// one or the size rule replaces it.
func checkEnv(t *testing.T, spec executors.Spec, env []string) {
	t.Helper()
	got := map[string]string{}
	total := 0
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" || strings.ContainsRune(kv, 0) || len(kv) > maxEnvString {
			t.Fatalf("env string %.80q", kv)
		}
		if _, dup := got[name]; dup {
			t.Fatalf("env %s set twice", name)
		}
		got[name] = value
		total += len(kv) + 1
	}
	if total > maxEnvTotal {
		t.Fatalf("env of %d bytes", total)
	}
	fixed := map[string]string{EnvInputFile: inputFile, "TINI_KILL_PROCESS_GROUP": "1",
		executors.EnvJobID: spec.JobID, executors.EnvExecutionID: spec.ExecutionID}
	for k, v := range fixed {
		if got[k] != v {
			t.Fatalf("env %s = %q, want %q", k, got[k], v)
		}
	}
	for k, v := range spec.Env {
		if _, isFixed := fixed[k]; isFixed || k == executors.EnvInputData {
			continue
		}
		if got[k] != v {
			t.Fatalf("job variable %s lost", k)
		}
	}
	if in, ok := got[executors.EnvInputData]; ok && in != string(spec.InputJSON()) {
		t.Fatalf("%s differs from the input file", executors.EnvInputData)
	}
	if _, ok := got["HOME"]; !ok {
		t.Fatal("no HOME")
	}
}

// FuzzContainerName: two execution ids never share a container name, and
// every name is one Docker accepts.
func FuzzContainerName(f *testing.F) {
	f.Add("exec-42", "exec-43")
	f.Add("TestX/sub case", "TestX/sub-case")
	f.Add(strings.Repeat("é", 300), strings.Repeat("é", 301))
	f.Add("", "-")
	f.Fuzz(func(t *testing.T, a, b string) {
		na, nb := containerName(a), containerName(b)
		if !validName.MatchString(na) || len(na) > len("cronium-")+100+13 {
			t.Fatalf("containerName(%q) = %q", a, na)
		}
		if a != b && na == nb {
			t.Fatalf("containerName(%q) = containerName(%q) = %q", a, b, na)
		}
	})
}
