package jobspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
)

// fuzzJobSeeds are job JSON as the queue serves it (see backend's
// jobSeeds, which this repeats in part: test files do not cross packages).
var fuzzJobSeeds = []string{
	`{"id":"j","execution":{"script":{"type":"BASH","content":"echo hi"}}}`,
	`{"id":"j","execution":{"script":{"type":"NODEJS","content":"1"},"timeout":"5000000000"}}`,
	`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"environment":{"N":7,"B":true,"Z":null},"inputData":{"a": [1, 2]}}}`,
	`{"id":"j","execution":{"script":{"type":"HTTP_REQUEST"},"http":{"method":"post","url":"http://x/y","headers":{"A":"b"},"body":"{}"}}}`,
	`{"id":"j","execution":{"http":{"url":"ftp://x"}}}`,
	`{"id":"j","execution":{"target":{"type":"local"}}}`,
	`{"id":"j","execution":{"script":{"type":"RUBY","content":"x"}}}`,
	`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"target":{"type":"moon"}}}`,
	`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"target":{"type":"server","serverId":9}}}`,
	`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"target":{"type":"server","serverDetails":{"name":"s","host":"h","username":"u"}}}}`,
	`{"id":"j","execution":{"script":{"type":"PYTHON","content":"print(1)","workingDirectory":"../etc"},"timeout":1.5,"inputData":null}}`,
	`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"timeout":9.2e18,"resources":{"cpuLimit":0.5,"memoryLimit":536870912}}}`,
	`{"id":"job_x","execution":{"script":{"type":"BASH","content":"uptime"},"target":{"type":"server","serverId":"3",
	  "serverDetails":{"id":"3","name":"web-01","host":"fe80::1","port":22,"username":"deploy","password":"p"}}},
	  "metadata":{"eventId":"12","multiServer":true,"servers":[{"id":"1","name":"a","host":"h1","username":"u","password":"p"},
	  {"id":2,"host":"h2","port":2222,"username":"u","privateKey":"k"}]}}`,
	`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"target":{"type":"server","serverDetails":{"host":"h","port":70000,"username":"u","password":"p"}}}}`,
}

func addFuzzJobSeeds(f *testing.F) {
	for _, s := range fuzzJobSeeds {
		f.Add([]byte(s))
	}
	for _, name := range []string{"container-job.json", "ssh-job.json"} {
		b, err := os.ReadFile("../backend/testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzBuild plans arbitrary job JSON. A job that decodes either fails to
// plan with a classified error, or plans into a consistent Plan; planning
// is deterministic, and a job restored from the journal (json.Marshal,
// then json.Unmarshal) plans the same.
func FuzzBuild(f *testing.F) {
	addFuzzJobSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var job backend.Job
		if json.Unmarshal(raw, &job) != nil {
			return
		}
		const execID, def = "exec_1", time.Hour
		plan, err := Build(job, execID, def)
		again, err2 := Build(job, execID, def)
		if !reflect.DeepEqual(plan, again) || (err == nil) != (err2 == nil) {
			t.Fatalf("Build is not deterministic:\n%+v, %v\n%+v, %v", plan, err, again, err2)
		}
		if err != nil {
			if !errors.Is(err, executors.ErrInvalidSpec) && !errors.Is(err, ErrNeedsCredentials) {
				t.Fatalf("error not classified: %v", err)
			}
			return
		}
		checkPlan(t, job, plan, execID, def)

		journaled, err := json.Marshal(job)
		if err != nil {
			t.Fatalf("journal: %v", err)
		}
		var restored backend.Job
		if err := json.Unmarshal(journaled, &restored); err != nil {
			t.Fatalf("restore: %v\n%s", err, journaled)
		}
		replanned, err := Build(restored, execID, def)
		if err != nil {
			t.Fatalf("a restored job no longer plans: %v\n%s", err, journaled)
		}
		if a, b := canonical(plan), canonical(replanned); !reflect.DeepEqual(a, b) {
			t.Fatalf("a restored job plans differently:\n%+v\n%+v", a, b)
		}
	})
}

func checkPlan(t *testing.T, job backend.Job, p Plan, execID string, def time.Duration) {
	t.Helper()
	s := p.Spec
	// A timeout is never longer than the job asked (it may be capped); a
	// job without one gets the default.
	asked := job.Execution.Timeout.Duration()
	if s.JobID != job.ID || s.ExecutionID != execID || s.Timeout <= 0 ||
		asked > 0 && s.Timeout > asked || asked <= 0 && s.Timeout != def {
		t.Fatalf("ids or timeout %s for %s: %+v", s.Timeout, asked, s)
	}
	if (s.Script == nil) == (s.HTTP == nil) || (p.Kind == KindHTTP) != (s.HTTP != nil) {
		t.Fatalf("kind %s with script %v, http %v", p.Kind, s.Script, s.HTTP)
	}
	if s.Script != nil && strings.TrimSpace(s.Script.Content) == "" {
		t.Fatal("a blank script planned")
	}
	if s.HTTP != nil && (s.HTTP.Method == "" || s.HTTP.Method != strings.ToUpper(s.HTTP.Method)) {
		t.Fatalf("method %q", s.HTTP.Method)
	}
	switch p.Kind {
	case KindContainer, KindHTTP:
		if len(s.Servers) != 0 || len(p.Executions) != 1 || p.Executions[0] != (Execution{ID: execID}) {
			t.Fatalf("%s plan: servers %d, executions %+v", p.Kind, len(s.Servers), p.Executions)
		}
	case KindSSH:
		if len(s.Servers) == 0 || len(s.Servers) != len(p.Executions) {
			t.Fatalf("ssh plan: %d servers, %d executions", len(s.Servers), len(p.Executions))
		}
		seen := map[string]bool{}
		for i, srv := range s.Servers {
			if srv.Host == "" || srv.Username == "" || srv.Port < 0 || srv.Port > 65535 ||
				!srv.PrivateKey.IsSet() && !srv.Password.IsSet() {
				t.Fatalf("server %d: %+v", i, srv)
			}
			x := p.Executions[i]
			if seen[x.ID] || x.ServerID != srv.ID || x.ServerName != srv.Label() {
				t.Fatalf("execution %d: %+v (server %+v)", i, x, srv)
			}
			seen[x.ID] = true
		}
	default:
		t.Fatalf("kind %q", p.Kind)
	}
}

// canonical is what a plan means: nil and empty maps alike, inputData as
// compact JSON (json.Marshal compacts and escapes a RawMessage).
func canonical(p Plan) Plan {
	s := &p.Spec
	s.Env = orEmpty(s.Env)
	if s.HTTP != nil {
		h := *s.HTTP
		h.Headers = orEmpty(h.Headers)
		s.HTTP = &h
	}
	var b bytes.Buffer
	if json.Compact(&b, s.InputData) == nil {
		var esc bytes.Buffer
		json.HTMLEscape(&esc, b.Bytes())
		s.InputData = esc.Bytes()
	}
	return p
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

// FuzzNewExecutionID: an execution id fits the backend's 100 characters,
// stays valid UTF-8 (it travels in JSON and names containers), and ends
// with the time that makes it unique.
func FuzzNewExecutionID(f *testing.F) {
	// The last one was cut mid-character before NewExecutionID kept to
	// character boundaries.
	for _, id := range []string{"job_8fK2mQ9xZ1aB", "", strings.Repeat("j", 200), "jöb", strings.Repeat("é", 60),
		strings.Repeat("é", 60) + "x"} {
		f.Add(id, int64(1761141791512000000))
	}
	f.Fuzz(func(t *testing.T, jobID string, nanos int64) {
		now := time.Unix(0, nanos)
		id := NewExecutionID(jobID, now)
		if len(id) > 100 || id == "" {
			t.Fatalf("%q: %d bytes", id, len(id))
		}
		if utf8.ValidString(jobID) && !utf8.ValidString(id) {
			t.Fatalf("NewExecutionID(%q) = %q: not UTF-8", jobID, id)
		}
		if !strings.HasSuffix(id, "_"+strconv.FormatInt(now.UnixNano(), 10)) {
			t.Fatalf("%q does not end with the time", id)
		}
		if id != NewExecutionID(jobID, now) {
			t.Fatal("not deterministic")
		}
	})
}
