package config

import (
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// FuzzLoad loads arbitrary YAML, environment and flags. Load never panics
// and reports problems as Errors naming a key; loading the same input
// twice gives the same config and errors; flags beat the environment,
// which beats the file; and a config Validate accepts is accepted again
// and is one the executors can use.
func FuzzLoad(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("..", "config.example.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example), "CRONIUM_API_TOKEN=t", "")
	for _, tc := range [][3]string{
		{"", "", ""},
		{"null", "", ""},
		{"[]", "", ""},
		{"just a string", "", ""},
		{"---\napi:\n  token: t\n---\njobs: {}\n", "", ""},
		{"api:\n  token: t\njobs: {max_concurrent: 3, poll_interval: 9s}\n", "CRONIUM_JOBS_MAX_CONCURRENT=4", "--jobs-max-concurrent\n5"},
		{"api:\n  token: t\ndocker:\n  default_cpus: inf\n  max_cpus: inf\n", "", ""},
		{"api:\n  token: t\ndocker:\n  max_cpus: 1e300\n", "", ""},
		{"api:\n  token: t\ndocker:\n  enabled: false\n  default_cpus: nan\n", "", ""},
		{"jobs:\n  output_max_bytes: 8EiB\n  max_concurrent: 0x10\n  poll_interval: -1s\n", "", ""},
		{"base: &b\n  url: http://x\napi: *b\njobs:\n  <<: *b\n", "", ""},
		{"api:\n  url: [a, b]\n  url: http://dup:1\n  token: !!binary dGVzdA==\n", "INTERNAL_API_KEY=alias", ""},
		{"api: ~\njobs:\n  max_concurrent: ~\n  stop_grace:\n", "CRONIUM_API_TOKEN=\nINTERNAL_API_KEY=alias", "-api-token=x\n--bogus"},
		{"docker:\n  user: root\n  pull_policy: sometimes\nadmin:\n  listen: 0.0.0.0:1\n", "", "--log-level\nDEBUG"},
		{"ssh:\n  remote_spool_dir: /tmp/x y\n  max_sessions_per_conn: 10\n", "CRONIUM_SSH_HOST_KEY_POLICY=insecure-ignore\nCRONIUM_SSH_KNOWN_HOSTS=", ""},
		{"\t- bad indent", "", ""},
		{"a: {b: {c: {d: {e: [[[[[[]]]]]]}}}}", "", ""},
	} {
		f.Add(tc[0], tc[1], tc[2])
	}
	dir := f.TempDir()
	var n atomic.Int64
	keys := Keys()
	f.Fuzz(func(t *testing.T, yaml, env, args string) {
		file := filepath.Join(dir, "c"+strconv.FormatInt(n.Add(1), 10)+".yaml")
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(file)
		envMap := map[string]string{}
		for _, line := range strings.Split(env, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				envMap[k] = v
			}
		}
		fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		RegisterFlags(fs)
		_ = fs.Parse(strings.Split(args, "\n")) // what parsed before an error still counts
		src := Sources{File: file, LookupEnv: envOf(envMap), Flags: fs}

		cfg, err := Load(src)
		cfg2, err2 := Load(src)
		if a, b := render(keys, &cfg), render(keys, &cfg2); !reflect.DeepEqual(a, b) || errText(err) != errText(err2) {
			t.Fatalf("Load is not stable:\n%v %v\n%v %v", a, err, b, err2)
		}
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("Load error is not Errors: %v", err)
			}
			for _, e := range errs {
				if e.Key == "" || e.Err == nil {
					t.Fatalf("field error %+v", e)
				}
			}
		}
		checkPrecedence(t, keys, cfg, envMap, fs)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("Validate error is not Errors: %v", err)
			}
			return
		}
		if err := cfg2.Validate(); err != nil {
			t.Fatalf("the same config validated once, then not: %v", err)
		}
		d := cfg.Docker
		if d.Enabled && (!finiteCPUs(d.DefaultCPUs) || !finiteCPUs(d.MaxCPUs)) {
			t.Fatalf("validated CPU limits %g, %g that a container cannot be given", d.DefaultCPUs, d.MaxCPUs)
		}
	})
}

// finiteCPUs: Docker takes CPUs as an int64 of nano-CPUs.
func finiteCPUs(c float64) bool { return c > 0 && c*1e9 < math.MaxInt64 }

// checkPrecedence: a key given as a flag has the flag's value; else, one
// set in the environment has the environment's (its main name before its
// aliases), whatever the file says.
func checkPrecedence(t *testing.T, keys []Key, cfg Config, env map[string]string, fs *flag.FlagSet) {
	t.Helper()
	given := map[string]string{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = fl.Value.String() })
	for _, k := range keys {
		raw, ok := given[k.Flag]
		if !ok {
			for _, name := range append([]string{k.Env}, k.Aliases...) {
				if raw, ok = env[name]; ok {
					break
				}
			}
		}
		if !ok {
			continue
		}
		want := Default()
		if k.Set(&want, raw) != nil {
			continue // reported as an error; the lower level's value stays
		}
		if got, w := renderKey(k, &cfg), renderKey(k, &want); got != w {
			t.Fatalf("%s = %q, want %q from flag or environment %q", k.Path, got, w, raw)
		}
	}
}

// render is every setting as text, secrets revealed and floats exact, so
// that two configs compare equal even when they hold NaN.
func render(keys []Key, cfg *Config) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = renderKey(k, cfg)
	}
	return out
}

func renderKey(k Key, cfg *Config) string {
	v := reflect.ValueOf(cfg).Elem().FieldByIndex(k.index)
	switch v.Kind() {
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.String:
		return v.String()
	}
	return strconv.Quote(v.Type().String()) + "=" + strconv.FormatBool(v.Bool())
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Found by FuzzLoad's seeds: docker.max_cpus (and with it default_cpus)
// could be inf or 1e300, which the docker executor turns into a negative
// NanoCPUs, failing every container job.
func TestValidateRefusesCPUsDockerCannotTake(t *testing.T) {
	for _, c := range [][2]float64{{1, 1e300}, {1, math.Inf(1)}, {math.Inf(1), math.Inf(1)}, {1, 1e10}} {
		cfg := Default()
		cfg.API.Token = "t"
		cfg.Docker.DefaultCPUs, cfg.Docker.MaxCPUs = c[0], c[1]
		var errs Errors
		if err := cfg.Validate(); !errors.As(err, &errs) || !strings.Contains(err.Error(), "docker.max_cpus") {
			t.Errorf("default_cpus %g, max_cpus %g: %v", c[0], c[1], err)
		}
	}
	cfg := Default()
	cfg.API.Token = "t"
	cfg.Docker.MaxCPUs = 256
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Found by FuzzLoad (testdata/fuzz/FuzzLoad/2a60a49e2448ffce): a key that
// is empty or not a plain name was reported as " (file ...): unknown key",
// naming no key at all.
func TestLoadNamesWhereABadKeyIs(t *testing.T) {
	for yaml, want := range map[string]string{
		"?":                            "config (file ",
		"? [a, b]\n: c\n":              "config (file ",
		"jobs:\n  ? {x: 1}\n  : 3\n":   "jobs (file ",
		"jobs:\n  \"\": 3\n":           "jobs (file ",
		"jobs:\n  max_concurrent: 3\n": "",
	} {
		_, err := Load(Sources{File: writeFile(t, yaml)})
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", yaml, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "want a key name")):
			t.Errorf("%q: %v; want %q... want a key name", yaml, err, want)
		}
	}
}
