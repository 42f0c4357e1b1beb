// Command benchreport is make bench: it runs the benchmarks of
// internal/benchreport.Runs (each with go test, its output shown as it
// comes and kept in -logs), judges internal/benchreport.Targets against
// their figures, prints a table and one line per target, last, and writes
// the report (-out, BENCHMARKS.md).
//
//	go run ./scripts/benchreport [-out BENCHMARKS.md] [-logs DIR] [-budget 10m] [-only REGEX]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/cronium/orchestrator/internal/benchreport"
)

func main() {
	out := flag.String("out", "BENCHMARKS.md", "the report to write")
	logs := flag.String("logs", ".cronium/bench", "directory for each go test's output")
	budget := flag.Duration("budget", 10*time.Minute, "time for every run together; runs beyond it are not measured")
	only := flag.String("only", "", "run only the runs whose functions match this regular expression")
	flag.Parse()
	if err := run(*out, *logs, *budget, *only); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(out, logs string, budget time.Duration, only string) error {
	onlyRe, err := regexp.Compile(only)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	started := time.Now()
	m := machine()
	res := benchreport.NewResults()
	why := map[string]string{} // by function: why its run gave nothing
	for i, r := range benchreport.Runs {
		if !onlyRe.MatchString(strings.Join(r.Funcs, " ")) {
			noteAll(why, r, "not run (-only)")
			continue
		}
		// What is left, less a margin for building the test binary and
		// tearing down: the run's go test timeout.
		left := budget - time.Since(started) - 30*time.Second
		if left < 30*time.Second {
			noteAll(why, r, fmt.Sprintf("not run: the %s budget was spent", budget))
			continue
		}
		pkgs, missing := locate(r.Funcs)
		for _, f := range missing {
			why[f] = "no func " + f + " in the tree"
		}
		for pkg, funcs := range pkgs {
			rr := r
			rr.Funcs = funcs
			log := filepath.Join(logs, fmt.Sprintf("%02d-%s.txt", i+1, funcs[0]))
			if err := goTest(pkg, rr, min(r.Timeout, left), log, &res); err != nil {
				noteAll(why, rr, err.Error()+" (log: "+log+")")
			}
		}
	}
	verdicts := make([]benchreport.Verdict, 0, len(benchreport.Targets))
	for _, t := range benchreport.Targets {
		verdicts = append(verdicts, benchreport.Judge(t, res, func(bench string) string {
			fn, _, _ := strings.Cut(bench, "/")
			return why[fn]
		}))
	}
	m.took = time.Since(started).Round(time.Second)
	m.loadAfter = loadavg()
	report := benchreport.Report{Machine: m.lines(), Results: res, Verdicts: verdicts}
	if err := os.WriteFile(out, []byte(report.Markdown()), 0o644); err != nil {
		return err
	}
	fmt.Println()
	fmt.Print(report.Text())
	fmt.Printf("(written to %s)\n", out)
	for _, v := range verdicts {
		fmt.Println(v.Line())
	}
	return nil
}

func noteAll(why map[string]string, r benchreport.Run, reason string) {
	for _, f := range r.Funcs {
		if why[f] == "" {
			why[f] = reason
		}
	}
}

// locate finds the package directory of each benchmark function
// ("./daemon"), by its declaration in a _test.go file of the module.
func locate(funcs []string) (map[string][]string, []string) {
	found := map[string][]string{}
	var missing []string
	decl := map[string]*regexp.Regexp{}
	for _, f := range funcs {
		decl[f] = regexp.MustCompile(`(?m)^func ` + f + `\(b \*testing\.B\)`)
	}
	seen := map[string]bool{}
	_ = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for _, f := range funcs {
			if !seen[f] && decl[f].Match(src) {
				seen[f] = true
				pkg := "./" + filepath.Dir(path)
				found[pkg] = append(found[pkg], f)
			}
		}
		return nil
	})
	for _, f := range funcs {
		if !seen[f] {
			missing = append(missing, f)
		}
	}
	return found, missing
}

// goTest runs one go test -bench, shows its output and keeps it in log,
// and adds its figures to res. An error says why it gave none, or not
// all (a failed or timed-out run keeps the figures it printed).
func goTest(pkg string, r benchreport.Run, timeout time.Duration, log string, res *benchreport.Results) error {
	args := []string{"test", "-run", "^$", "-bench", r.Regex(), "-benchtime", r.Benchtime,
		"-count", "1", "-timeout", timeout.Round(time.Second).String(), pkg}
	fmt.Printf("\n== go %s\n", strings.Join(args, " "))
	f, err := os.Create(log)
	if err != nil {
		return err
	}
	defer f.Close()
	var buf bytes.Buffer
	// The go test timeout panics the test binary; the context is the
	// backstop for a build or a process that does not end.
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Stdout = io.MultiWriter(os.Stdout, f, &buf)
	cmd.Stderr = cmd.Stdout
	runErr := cmd.Run()
	if err := benchreport.Parse(&buf, *res); err != nil {
		return err
	}
	switch {
	case runErr == nil:
		return nil
	case strings.Contains(buf.String(), "panic: test timed out"), errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("did not finish within %s", timeout.Round(time.Second))
	default:
		return fmt.Errorf("go test failed: %v", runErr)
	}
}

type machineInfo struct {
	started    time.Time
	cores      int
	cpu        string
	kernel     string
	docker     string
	goVersion  string
	loadBefore string
	loadAfter  string
	took       time.Duration
}

func machine() *machineInfo {
	m := &machineInfo{started: time.Now().UTC(), cores: runtime.NumCPU(), loadBefore: loadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	m.kernel = firstLine(os.ReadFile("/proc/sys/kernel/osrelease"))
	m.docker = firstLine(exec.Command("docker", "version", "--format", "{{.Server.Version}} ({{.Server.Os}}/{{.Server.Arch}})").Output())
	m.goVersion = strings.TrimPrefix(firstLine(exec.Command("go", "version").Output()), "go version ")
	return m
}

func (m *machineInfo) lines() []string {
	or := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	return []string{
		"date: " + m.started.Format("2006-01-02 15:04 UTC"),
		fmt.Sprintf("cores: %d", m.cores),
		"CPU: " + or(m.cpu),
		"kernel: " + or(m.kernel),
		"docker: " + or(m.docker),
		"go: " + or(m.goVersion),
		"load average (1, 5, 15 min) before: " + or(m.loadBefore) + "; after: " + or(m.loadAfter),
		"took: " + m.took.String(),
	}
}

func loadavg() string {
	f := strings.Fields(firstLine(os.ReadFile("/proc/loadavg")))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func firstLine(b []byte, err error) string {
	if err != nil {
		return ""
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return l
}
