package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
)

func unitExecutor(t *testing.T, o Options) *Executor {
	t.Helper()
	o, err := o.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newExecutor(o, nil)
}

func TestPlanLimits(t *testing.T) {
	const mib = 1 << 20
	opts := Options{
		DefaultMemory: 256 * mib, MaxMemory: 1024 * mib,
		DefaultCPUs: 0.5, MaxCPUs: 2,
		DefaultPids: 100, MaxPids: 500,
		TmpfsSize: 128 * mib,
	}
	tests := []struct {
		name       string
		req        executors.Resources
		wantMem    int64
		wantNano   int64
		wantPids   int64
		wantTmpfsS string
	}{
		{"defaults when zero", executors.Resources{}, 256 * mib, 5e8, 100, "size=134217728"},
		{"within limits", executors.Resources{MemoryBytes: 512 * mib, CPUs: 1.5, Pids: 200, DiskBytes: 64 * mib},
			512 * mib, 15e8, 200, "size=67108864"},
		{"clamped to maxima", executors.Resources{MemoryBytes: 8192 * mib, CPUs: 16, Pids: 100000, DiskBytes: 1 << 40},
			1024 * mib, 2e9, 500, "size=134217728"},
		{"raised to minima", executors.Resources{MemoryBytes: 1, CPUs: 0.0001, Pids: 1, DiskBytes: 1},
			minMemory, 1e7, minPids, "size=1048576"},
	}
	e := unitExecutor(t, opts)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := e.hostConfig(tt.req)
			if h.Memory != tt.wantMem || h.MemorySwap != tt.wantMem {
				t.Errorf("memory = %d swap %d, want %d for both", h.Memory, h.MemorySwap, tt.wantMem)
			}
			if h.NanoCPUs != tt.wantNano {
				t.Errorf("nano cpus = %d, want %d", h.NanoCPUs, tt.wantNano)
			}
			if h.PidsLimit == nil || *h.PidsLimit != tt.wantPids {
				t.Errorf("pids = %v, want %d", h.PidsLimit, tt.wantPids)
			}
			for _, dir := range []string{"/work", "/tmp"} {
				if !strings.Contains(h.Tmpfs[dir], tt.wantTmpfsS+",") || !strings.Contains(h.Tmpfs[dir], "mode=1777") {
					t.Errorf("tmpfs %s = %q, want %s and mode=1777", dir, h.Tmpfs[dir], tt.wantTmpfsS)
				}
			}
		})
	}
}

func TestPlanContainerConfig(t *testing.T) {
	e := unitExecutor(t, Options{OrchestratorID: "orch-1", ReadOnlyRoot: true, NetworkMode: "none"})
	spec := executors.Spec{
		JobID: "job-9", ExecutionID: "exec-42",
		Script:    &executors.Script{Language: executors.Python, Content: "print(1)"},
		Env:       map[string]string{"TOKEN": "s3cret", "HOME": "/custom", EnvInputFile: "/nope"},
		InputData: []byte(`{"a":1}`),
	}
	p, err := e.plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	c, h := p.config, p.host
	if p.name != "cronium-exec-42" || c.Image != "cronium/runtime-python:1" || c.User != "65534:65534" {
		t.Errorf("name %q image %q user %q", p.name, c.Image, c.User)
	}
	wantLabels := map[string]string{LabelManaged: "true", LabelOrchestrator: "orch-1", LabelJob: "job-9", LabelExecution: "exec-42"}
	for k, v := range wantLabels {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if !c.OpenStdin || !c.StdinOnce || !c.AttachStdin || c.Tty {
		t.Errorf("stdin settings: open %v once %v attach %v tty %v", c.OpenStdin, c.StdinOnce, c.AttachStdin, c.Tty)
	}
	if want := []string{"python3", "/work/.cronium/script.py"}; !slices.Equal(c.Cmd, want) {
		t.Errorf("cmd = %q, want %q", c.Cmd, want)
	}
	// The bootstrap's arguments: the script's directory, then the backstop
	// limit in seconds ("0": the job has no timeout).
	if n := len(c.Entrypoint); c.Entrypoint[0] != "/bin/sh" || n < 2 || !slices.Equal(c.Entrypoint[n-2:], []string{"/work", "0"}) {
		t.Errorf("entrypoint = %q", c.Entrypoint)
	}
	for _, kv := range []string{"TOKEN=s3cret", "HOME=/custom", "CRONIUM_INPUT_FILE=/work/.cronium/input.json",
		"CRONIUM_EXECUTION_ID=exec-42", "PYTHONUNBUFFERED=1", `CRONIUM_INPUT_DATA={"a":1}`} {
		if !slices.Contains(c.Env, kv) {
			t.Errorf("env lacks %s: %q", kv, c.Env)
		}
	}
	if slices.Contains(c.Env, "CRONIUM_INPUT_FILE=/nope") || slices.Contains(c.Env, "HOME=/work") {
		t.Errorf("env has an overridden value: %q", c.Env)
	}
	if !slices.Equal(h.CapDrop, []string{"ALL"}) || !slices.Equal(h.SecurityOpt, []string{"no-new-privileges"}) ||
		h.Init == nil || !*h.Init || !h.ReadonlyRootfs || h.NetworkMode != "none" || h.LogConfig.Type != "local" || h.AutoRemove {
		t.Errorf("host config: %+v", h)
	}
	if len(p.files) != 2 || string(p.files[0].data) != "print(1)" || string(p.files[1].data) != `{"a":1}` {
		t.Errorf("files = %+v", p.files)
	}
}

func TestPlanRejects(t *testing.T) {
	e := unitExecutor(t, Options{})
	script := func(dir string) *executors.Script {
		return &executors.Script{Language: executors.Bash, Content: "true", WorkDir: dir}
	}
	tests := []struct {
		name string
		spec executors.Spec
	}{
		{"no script", executors.Spec{ExecutionID: "x"}},
		{"no execution id", executors.Spec{Script: script("")}},
		{"unknown language", executors.Spec{ExecutionID: "x", Script: &executors.Script{Language: "cobol"}}},
		{"workdir outside /work", executors.Spec{ExecutionID: "x", Script: script("/etc")}},
		{"workdir escaping /work", executors.Spec{ExecutionID: "x", Script: script("/work/../etc")}},
		{"relative workdir escaping", executors.Spec{ExecutionID: "x", Script: script("../../etc")}},
		{"workdir prefix trick", executors.Spec{ExecutionID: "x", Script: script("/workshop")}},
		{"bad env name", executors.Spec{ExecutionID: "x", Script: script(""), Env: map[string]string{"A=B": "1"}}},
		{"NUL in env value", executors.Spec{ExecutionID: "x", Script: script(""), Env: map[string]string{"K": "vvvv\x00vvvv"}}},
		{"env too long", executors.Spec{ExecutionID: "x", Script: script(""), Env: map[string]string{"BIG": strings.Repeat("v", 200<<10)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.plan(tt.spec)
			if !errors.Is(err, executors.ErrInvalidSpec) {
				t.Fatalf("err = %v, want ErrInvalidSpec", err)
			}
			if strings.Contains(err.Error(), "vvvv") {
				t.Errorf("error shows an env value: %.80s", err)
			}
		})
	}
}

func TestPlanLargeInputDataOnlyInFile(t *testing.T) {
	e := unitExecutor(t, Options{})
	big := []byte(`{"blob":"` + strings.Repeat("x", 300<<10) + `"}`)
	p, err := e.plan(executors.Spec{ExecutionID: "x", InputData: big,
		Script: &executors.Script{Language: executors.Bash, Content: "true"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range p.config.Env {
		if strings.HasPrefix(kv, executors.EnvInputData+"=") {
			t.Errorf("oversized %s is in the environment", executors.EnvInputData)
		}
	}
	if !bytes.Equal(p.files[1].data, big) {
		t.Error("input file does not hold the input data")
	}
}

func TestScriptDir(t *testing.T) {
	for in, want := range map[string]string{"": "/work", "/work": "/work", "/work/a/b/": "/work/a/b", "sub": "/work/sub", "./a/../b": "/work/b"} {
		if got, err := scriptDir(in); err != nil || got != want {
			t.Errorf("scriptDir(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestContainerName(t *testing.T) {
	if got := containerName("0b7c-11ef_x.1"); got != "cronium-0b7c-11ef_x.1" {
		t.Errorf("plain id: %q", got)
	}
	a, b := containerName("TestX/sub case"), containerName("TestX/sub-case")
	if a == b || !strings.HasPrefix(a, "cronium-TestX-sub-case-") {
		t.Errorf("sanitised names %q and %q must differ and keep the id readable", a, b)
	}
	if a != containerName("TestX/sub case") {
		t.Error("name is not deterministic")
	}
	if long := containerName(strings.Repeat("é", 300)); len(long) > 130 {
		t.Errorf("long id gives a %d-byte name", len(long))
	}
}

func TestOptionsValidate(t *testing.T) {
	_, err := Options{PullPolicy: "sometimes", DefaultMemory: 2 << 30, MaxMemory: 1 << 30, DefaultPids: 10, MaxPids: 5}.withDefaults()
	for _, want := range []string{"pull policy", "max memory", "max pids"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not report %s", err, want)
		}
	}
	o, err := Options{Images: map[executors.Language]string{executors.Bash: "", executors.Node: "my/node:2"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	// The defaults are the configuration's.
	want := OptionsFromConfig(config.Default(), "")
	want.Images[executors.Node] = "my/node:2"
	want.ReadOnlyRoot = false // a bool has no "unset"
	o.Logger, o.Observer = nil, nil
	if !reflect.DeepEqual(o, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", o, want)
	}
	if o.PullPolicy != config.PullIfNotPresent || o.MaxMemory != 4<<30 || o.MaxPids != 4096 || o.MaxCPUs != 2 {
		t.Errorf("defaults differ from config.Default(): %+v", o)
	}
}

func TestOptionsFromConfig(t *testing.T) {
	c := config.Default()
	c.Docker = config.Docker{
		Host: "unix:///run/d.sock", PullPolicy: config.PullAlways,
		ImageBash: "b:1", ImagePython: "p:1", ImageNode: "n:1",
		NetworkMode: "none", User: "1000:1000", ReadOnlyRoot: true,
		TmpfsSize: 64 * config.MiB, DefaultMemory: 128 * config.MiB, MaxMemory: 2 * config.GiB,
		DefaultCPUs: 0.5, MaxCPUs: 3, DefaultPids: 50, MaxPids: 500,
		APITimeout: 7 * time.Second, PullTimeout: 3 * time.Minute,
	}
	c.Jobs.StopGrace = 4 * time.Second
	want := Options{
		Host: "unix:///run/d.sock", OrchestratorID: "orch-7",
		Images:     map[executors.Language]string{executors.Bash: "b:1", executors.Python: "p:1", executors.Node: "n:1"},
		PullPolicy: config.PullAlways, NetworkMode: "none", User: "1000:1000", ReadOnlyRoot: true,
		TmpfsSize: 64 << 20, DefaultMemory: 128 << 20, MaxMemory: 2 << 30,
		DefaultCPUs: 0.5, MaxCPUs: 3, DefaultPids: 50, MaxPids: 500,
		StopGrace: 4 * time.Second, APITimeout: 7 * time.Second, PullTimeout: 3 * time.Minute,
	}
	if got := OptionsFromConfig(c, "orch-7"); !reflect.DeepEqual(got, want) {
		t.Errorf("OptionsFromConfig:\n got %+v\nwant %+v", got, want)
	}
}

// TestPlanInputData: the input file and CRONIUM_INPUT_DATA agree, "{}"
// standing in for no data.
func TestPlanInputData(t *testing.T) {
	e := unitExecutor(t, Options{})
	for in, want := range map[string]string{"": "{}", "  \n": "{}", "null": "{}", "null\n": "{}", `{"a":1}`: `{"a":1}`, "[1]\n": "[1]\n"} {
		p, err := e.plan(executors.Spec{ExecutionID: "x", InputData: []byte(in),
			Script: &executors.Script{Language: executors.Bash, Content: "true"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(p.files[1].data); got != want {
			t.Errorf("input %q: file holds %q, want %q", in, got, want)
		}
		if kv := executors.EnvInputData + "=" + want; !slices.Contains(p.config.Env, kv) {
			t.Errorf("input %q: env lacks %q: %q", in, kv, p.config.Env)
		}
	}
}

func TestWriteFilesPadsAndUnpacks(t *testing.T) {
	var buf bytes.Buffer
	files := []file{{name: "script.sh", data: []byte("echo hi\n")}, {name: "input.json", data: []byte("{}")}}
	if err := writeFiles(&buf, files); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%tarRecord != 0 {
		t.Errorf("tar is %d bytes, not a whole record", buf.Len())
	}
	tr := tar.NewReader(&buf)
	for _, f := range files {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if hdr.Name != f.name || !bytes.Equal(data, f.data) {
			t.Errorf("entry %q = %q, want %q %q", hdr.Name, data, f.name, f.data)
		}
	}
}

func TestFormatBytesAndReason(t *testing.T) {
	for b, want := range map[int64]string{64 << 20: "64 MiB", 2 << 30: "2 GiB", 3<<20 + 1<<19: "3.5 MiB", 100: "100 bytes"} {
		if got := formatBytes(b); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", b, got, want)
		}
	}
	for _, tt := range []struct {
		cause      error
		when, want string
	}{
		{executors.ErrCancelled, "", "cancelled"},
		{fmt.Errorf("%w: by user", executors.ErrCancelled), "", "cancelled"},
		{context.Canceled, "before the script started", "cancelled before the script started"},
		{errors.New("job deleted"), "", "cancelled: job deleted"},
		{errors.New("job deleted"), "before the script started", "cancelled before the script started: job deleted"},
	} {
		if got := cancelReason(tt.cause, tt.when); got != tt.want {
			t.Errorf("cancelReason(%v, %q) = %q, want %q", tt.cause, tt.when, got, tt.want)
		}
	}
}

// TestBackstop: the limit the container enforces by itself when no
// orchestrator follows it.
func TestBackstop(t *testing.T) {
	for _, tt := range []struct {
		timeout, grace time.Duration
		want           string
	}{
		{0, 10 * time.Second, "0"},
		{-time.Second, 0, "0"},
		// Behind the executor's own deadline (timeout + grace) by 5 s,
		// rounded up to whole seconds for timeout(1).
		{time.Second, 0, "6"},
		{1500 * time.Millisecond, 0, "7"},
		{90 * time.Second, 10 * time.Second, "105"},
	} {
		if got := backstop(tt.timeout, tt.grace); got != tt.want {
			t.Errorf("backstop(%v, %v) = %s, want %s", tt.timeout, tt.grace, got, tt.want)
		}
	}
}

func TestRelayBackoff(t *testing.T) {
	for ends, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		5: 1600 * time.Millisecond, 10: 30 * time.Second, 50: 30 * time.Second} {
		if got := relayBackoff(ends); got != want {
			t.Errorf("relayBackoff(%d) = %v, want %v", ends, got, want)
		}
	}
}
