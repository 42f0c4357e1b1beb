package jobspec

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/executors"
)

// The container example of the API page, verbatim (shared with backend).
func containerJob(t *testing.T) string {
	b, err := os.ReadFile("../backend/testdata/container-job.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func decode(t *testing.T, s string) backend.Job {
	t.Helper()
	var j backend.Job
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		t.Fatal(err)
	}
	return j
}

func TestBuildContainerJobFromTheAPIPage(t *testing.T) {
	plan, err := Build(decode(t, containerJob(t)), "exec_1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := plan.Spec
	if plan.Kind != KindContainer || s.Script.Language != executors.Python || s.Timeout != 30*time.Second ||
		s.Env["REPORT_DAYS"] != "7" || string(s.InputData) != `{"orderId": 1234}` ||
		s.Resources != (executors.Resources{CPUs: 0.5, MemoryBytes: 536870912, DiskBytes: 1073741824, Pids: 100}) {
		t.Fatalf("plan %+v spec %+v", plan, s)
	}
	if len(plan.Executions) != 1 || plan.Executions[0].ID != "exec_1" {
		t.Fatalf("executions %+v", plan.Executions)
	}
}

func TestBuild(t *testing.T) {
	ssh := func(extra string) string {
		return `{"id":"j","type":"ssh","execution":{"script":{"type":"BASH","content":"uptime"},
		"target":{"type":"server","serverId":"3","serverDetails":{"id":"3","name":"web-01","host":"10.0.0.21","port":22,
		"username":"deploy","privateKey":"-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"}}},
		"metadata":{"eventId":"12"` + extra + `}}`
	}
	tests := []struct {
		name     string
		job      string
		wantKind Kind
		wantErr  string
		check    func(t *testing.T, p Plan)
	}{
		{name: "bash default timeout", job: `{"id":"j","execution":{"script":{"type":"BASH","content":"echo hi"}}}`,
			wantKind: KindContainer, check: func(t *testing.T, p Plan) {
				if p.Spec.Timeout != time.Hour || p.Spec.Script.Language != executors.Bash {
					t.Fatalf("%+v", p.Spec)
				}
			}},
		{name: "node", job: `{"id":"j","execution":{"script":{"type":"NODEJS","content":"1"},"timeout":"5000000000"}}`,
			wantKind: KindContainer, check: func(t *testing.T, p Plan) {
				if p.Spec.Script.Language != executors.Node || p.Spec.Timeout != 5*time.Second {
					t.Fatalf("%+v", p.Spec)
				}
			}},
		{name: "zero timeout is the default", job: `{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"timeout":0}}`,
			wantKind: KindContainer, check: func(t *testing.T, p Plan) {
				if p.Spec.Timeout != time.Hour {
					t.Fatalf("timeout %v", p.Spec.Timeout)
				}
			}},
		{name: "negative timeout", job: `{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"timeout":-5000000000}}`,
			wantErr: "timeout -5s is negative"},
		{name: "100 years is clamped", job: `{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"timeout":3153600000000000000}}`,
			wantKind: KindContainer, check: func(t *testing.T, p Plan) {
				if p.Spec.Timeout != MaxTimeout {
					t.Fatalf("timeout %v", p.Spec.Timeout)
				}
			}},
		{name: "beyond int64 is clamped", job: `{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"timeout":1e30}}`,
			wantKind: KindContainer, check: func(t *testing.T, p Plan) {
				if p.Spec.Timeout != MaxTimeout {
					t.Fatalf("timeout %v", p.Spec.Timeout)
				}
			}},
		{name: "empty script", job: `{"id":"j","execution":{"script":{"type":"BASH","content":" \n\t"}}}`,
			wantErr: "the script is empty"},
		{name: "numeric env values", job: `{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"environment":{"N":7,"B":true}}}`,
			wantKind: KindContainer, check: func(t *testing.T, p Plan) {
				if p.Spec.Env["N"] != "7" || p.Spec.Env["B"] != "true" {
					t.Fatalf("%+v", p.Spec.Env)
				}
			}},
		{name: "ssh with string eventId", job: ssh(""), wantKind: KindSSH, check: func(t *testing.T, p Plan) {
			srv := p.Spec.Servers[0]
			if srv.Address() != "10.0.0.21:22" || srv.Username != "deploy" || !strings.Contains(srv.PrivateKey.Reveal(), "\n") {
				t.Fatalf("%+v", srv)
			}
			if p.Executions[0].ServerName != "web-01" || p.Executions[0].ServerID != "3" {
				t.Fatalf("%+v", p.Executions)
			}
		}},
		{name: "multi-server", job: ssh(`,"multiServer":true,"servers":[{"id":"1","name":"a","host":"h1","username":"u","password":"p"},{"id":2,"name":"b","host":"h2","username":"u","password":"p"}]`),
			wantKind: KindSSH, check: func(t *testing.T, p Plan) {
				if len(p.Spec.Servers) != 2 || len(p.Executions) != 2 ||
					p.Executions[0].ID != "exec_1-1" || p.Executions[1].ID != "exec_1-2" || p.Executions[1].ServerID != "2" {
					t.Fatalf("%+v", p.Executions)
				}
			}},
		{name: "http", job: `{"id":"j","execution":{"script":{"type":"HTTP_REQUEST"},"http":{"method":"post","url":"http://x/y","headers":{"A":"b"},"body":"{}"}}}`,
			wantKind: KindHTTP, check: func(t *testing.T, p Plan) {
				if p.Spec.HTTP.Method != "POST" || p.Spec.HTTP.Headers["A"] != "b" {
					t.Fatalf("%+v", p.Spec.HTTP)
				}
			}},
		{name: "tool action", job: `{"id":"j","execution":{"target":{"type":"local"}}}`, wantErr: "neither a script nor an HTTP request"},
		{name: "http without request", job: `{"id":"j","execution":{"script":{"type":"HTTP_REQUEST"}}}`, wantErr: "carries no execution.http"},
		{name: "bad url", job: `{"id":"j","execution":{"http":{"url":"ftp://x"}}}`, wantErr: "not an http(s) URL"},
		{name: "unknown language", job: `{"id":"j","execution":{"script":{"type":"RUBY","content":"x"}}}`, wantErr: "unknown script language"},
		{name: "unknown target", job: `{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"target":{"type":"moon"}}}`, wantErr: "unknown target type"},
		{name: "server without credentials", job: `{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"target":{"type":"server","serverDetails":{"name":"s","host":"h","username":"u"}}}}`,
			wantErr: "neither a private key nor a password"},
		{name: "server by id only", job: `{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"target":{"type":"server","serverId":"9"}}}`,
			wantErr: "server details missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Build(decode(t, tt.job), "exec_1", time.Hour)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error %q, got %v", tt.wantErr, err)
				}
				if !errors.Is(err, executors.ErrInvalidSpec) && !errors.Is(err, ErrNeedsCredentials) {
					t.Fatalf("error not classified: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind != tt.wantKind {
				t.Fatalf("kind %s, want %s", p.Kind, tt.wantKind)
			}
			tt.check(t, p)
		})
	}
}

func TestExecutionIDFitsTheBackend(t *testing.T) {
	id := NewExecutionID(strings.Repeat("j", 200), time.Now())
	if len(id) > 100 {
		t.Fatalf("%d chars", len(id))
	}
}

func TestServerAddress(t *testing.T) {
	for _, tt := range []struct {
		srv  executors.Server
		want string
	}{
		{executors.Server{Host: "10.0.0.21"}, "10.0.0.21:22"},
		{executors.Server{Host: "web-01", Port: 2222}, "web-01:2222"},
		{executors.Server{Host: "fe80::1", Port: 22}, "[fe80::1]:22"},
		{executors.Server{Host: "[fe80::1]", Port: 2222}, "[fe80::1]:2222"},
	} {
		if got := tt.srv.Address(); got != tt.want {
			t.Errorf("Address() = %q, want %q", got, tt.want)
		}
	}
}
