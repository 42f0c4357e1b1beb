package ssh

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/jobspec"
)

var (
	plainTag   = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)
	commandRE  = regexp.MustCompile(`^/bin/sh -c 'echo (cronium-sync-[0-9a-f]{24}) && p="\$\(echo ([A-Za-z0-9+/=]*) \| base64 -d\)" && eval "\$p"'$`)
	shellIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// FuzzPlanSSH takes arbitrary job JSON the way the orchestrator does
// (decoded, planned by jobspec) and, for SSH jobs, prepares what setup
// sends each server: the command line, its variables and the bundle on
// stdin. Preparing never panics and is deterministic; the command line is
// one single-quoted word whatever the job holds; every value the job
// gave (environment, working directory, script) reaches the server intact.
func FuzzPlanSSH(f *testing.F) {
	for _, s := range []string{
		`{"id":"job_1","execution":{"script":{"type":"BASH","content":"uptime","workingDirectory":"/srv"},
		  "target":{"type":"server","serverDetails":{"id":"3","host":"h","username":"u","password":"p"}}}}`,
		`{"id":"j'; rm -rf / #","execution":{"script":{"type":"PYTHON","content":"print('it''s')\n"},"timeout":1.5,
		  "environment":{"Q":"it's \"quoted\" $HOME ` + "`id`" + `","NL":"a\nb","N":7,"PYTHONUNBUFFERED":"0"},
		  "target":{"type":"server","serverDetails":{"host":"h","username":"u","privateKey":"k"}}}}`,
		`{"id":"j","execution":{"script":{"type":"NODEJS","content":"1","workingDirectory":"it's here"},"timeout":9.2e18,
		  "target":{"type":"server","serverDetails":{"host":"h","username":"u","password":"p"}}},
		  "metadata":{"multiServer":true,"servers":[{"id":"1","name":"a","host":"h1","username":"u","password":"p"},
		  {"id":2,"host":"h2","port":2222,"username":"u","privateKey":"k"}]}}`,
		`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"environment":{"A-B":"1"},
		  "target":{"type":"server","serverDetails":{"host":"h","username":"u","password":"p"}}}}`,
		`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"environment":{"A":"a\u0000b"},
		  "target":{"type":"server","serverDetails":{"host":"h","username":"u","password":"p"}}}}`,
	} {
		f.Add([]byte(s))
	}
	b, err := os.ReadFile("../../backend/testdata/ssh-job.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	opts, err := Options{OrchestratorID: "orch-1"}.withDefaults()
	if err != nil {
		f.Fatal(err)
	}
	e := &Executor{opts: opts}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var job backend.Job
		if json.Unmarshal(raw, &job) != nil {
			return
		}
		jp, err := jobspec.Build(job, "exec_1", time.Hour)
		if err != nil || jp.Kind != jobspec.KindSSH {
			return
		}
		spec := jp.Spec
		if err := validate(spec); err != nil {
			if !errors.Is(err, executors.ErrInvalidSpec) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		for i, srv := range spec.Servers {
			sub := spec
			if len(spec.Servers) > 1 {
				sub.ExecutionID = executors.ServerExecutionID(spec.ExecutionID, i)
			}
			tg := &target{srv: srv, executionID: sub.ExecutionID, jobExecutionID: spec.ExecutionID}
			r := &remoteRun{e: e, spec: sub, t: tg, tag: spoolTag(sub.JobID, tg.executionID)}
			if !plainTag.MatchString(r.tag) || len(r.tag) > 40+1+64 {
				t.Fatalf("spool tag %q", r.tag)
			}
			if ok, _ := path.Match(jobSpools(sub.JobID), r.tag); !ok {
				t.Fatalf("jobSpools(%q) misses %q", sub.JobID, r.tag)
			}
			bundle, vars := r.bundle()
			bundle2, vars2 := r.bundle()
			if !bytes.Equal(bundle, bundle2) || !reflect.DeepEqual(vars, vars2) {
				t.Fatal("bundle is not deterministic")
			}
			checkBundle(t, sub, bundle, vars)
			checkCommand(t, vars)
		}
	})
}

// checkBundle reads the bundle as remote.sh does: the unpack program
// (nunpack bytes) writes the environment file and the script, and nothing
// else (no helpers here), and ends with the line naming upload_end.
func checkBundle(t *testing.T, spec executors.Spec, bundle []byte, vars [][2]string) {
	t.Helper()
	byName := map[string]string{}
	for _, kv := range vars {
		byName[kv[0]] = kv[1]
	}
	body, ok := bytes.CutSuffix(bundle, []byte(": "+uploadEnd+"\n"))
	if byName["nunpack"] != strconv.Itoa(len(bundle)) || !ok || byName["upload_end"] != uploadEnd || byName["helpers"] != "0" {
		t.Fatalf("bundle of %d bytes, variables %q", len(bundle), vars)
	}
	files, err := parseUnpack(string(body))
	name := "script" + spec.Script.Language.FileExt()
	if err != nil || len(files) != 2 || files[0][0] != "env" || files[1] != [2]string{name, spec.Script.Content} {
		t.Fatalf("unpack program: %v %q\n%s", err, files, bundle)
	}
	envFile := files[0][1]
	got, err := parseAssignments(string(envFile), "export ")
	if err != nil {
		t.Fatalf("environment file: %v\n%s", err, envFile)
	}
	want := scriptEnv(spec)
	if len(got) != len(want) {
		t.Fatalf("environment file has %d variables, want %d", len(got), len(want))
	}
	for i, v := range want {
		if got[i] != [2]string{v.Name, v.Value} {
			t.Fatalf("variable %d: %q, want %q", i, got[i], v)
		}
	}
	if byName["workdir"] != spec.Script.WorkDir ||
		byName["lang"] != string(spec.Script.Language) {
		t.Fatalf("setup variables %q", vars)
	}
	if s, err := strconv.ParseFloat(byName["timeout"], 64); err != nil || s < 0 || spec.Timeout > 0 && s < spec.Timeout.Seconds()-0.001 {
		t.Fatalf("timeout %q for %s", byName["timeout"], spec.Timeout)
	}
}

// checkCommand: the command line is the one-word form remoteCommand
// promises, and its program sets every variable to exactly its value.
func checkCommand(t *testing.T, vars [][2]string) {
	t.Helper()
	cmd, sync := remoteCommand(vars, "setup")
	m := commandRE.FindStringSubmatch(cmd)
	if m == nil || m[1] != sync {
		t.Fatalf("command line %.200q", cmd)
	}
	prog, err := base64.StdEncoding.DecodeString(m[2])
	if err != nil {
		t.Fatal(err)
	}
	head, ok := strings.CutSuffix(string(prog), remoteLib+"\n\"${1:-setup}\"\n")
	if !ok {
		t.Fatal("program does not end with the library and the step")
	}
	got, err := parseAssignments(head, "")
	if err != nil {
		t.Fatalf("variables: %v\n%s", err, head)
	}
	if !reflect.DeepEqual(got, vars) {
		t.Fatalf("variables %q, want %q", got, vars)
	}
}

// parseAssignments reads lines of prefix NAME='quoted' (POSIX sh single
// quotes, a quote written '\”) and returns each name and value.
func parseAssignments(s, prefix string) ([][2]string, error) {
	var out [][2]string
	for s != "" {
		rest, ok := strings.CutPrefix(s, prefix)
		if !ok {
			return nil, errors.New("line without " + prefix)
		}
		name, rest, ok := strings.Cut(rest, "=")
		if !ok || !shellIdent.MatchString(name) {
			return nil, errors.New("bad name " + strconv.Quote(name))
		}
		value, rest, err := readQuoted(rest)
		if err != nil {
			return nil, err
		}
		rest, ok = strings.CutPrefix(rest, "\n")
		if !ok {
			return nil, errors.New("value of " + name + " is not one quoted word")
		}
		out = append(out, [2]string{name, value})
		s = rest
	}
	return out, nil
}

// parseUnpack reads the unpack program's lines, printf '%s' 'data'
// >"$d"/'name' || exit 1, and returns each file's name and data.
func parseUnpack(s string) ([][2]string, error) {
	var out [][2]string
	for s != "" {
		rest, ok := strings.CutPrefix(s, "printf '%s' ")
		if !ok {
			return nil, errors.New("line without printf")
		}
		data, rest, err := readQuoted(rest)
		if err != nil {
			return nil, err
		}
		if rest, ok = strings.CutPrefix(rest, ` >"$d"/`); !ok {
			return nil, errors.New("no redirection after the data")
		}
		name, rest, err := readQuoted(rest)
		if err != nil {
			return nil, err
		}
		if rest, ok = strings.CutPrefix(rest, " || exit 1\n"); !ok {
			return nil, errors.New("line of " + name + " does not end in || exit 1")
		}
		out = append(out, [2]string{name, data})
		s = rest
	}
	return out, nil
}

// readQuoted reads one word of single-quoted parts, a quote written \'
// between them, and returns its value and what follows.
func readQuoted(rest string) (string, string, error) {
	var value strings.Builder
	for {
		switch {
		case strings.HasPrefix(rest, "'"):
			end := strings.IndexByte(rest[1:], '\'')
			if end < 0 {
				return "", "", errors.New("unterminated quote")
			}
			value.WriteString(rest[1 : 1+end])
			rest = rest[end+2:]
			continue
		case strings.HasPrefix(rest, `\'`):
			value.WriteByte('\'')
			rest = rest[2:]
			continue
		}
		return value.String(), rest, nil
	}
}
