package embedded

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/jobspec"
)

// FuzzSubmit posts arbitrary bodies to the public submit API. Each one is
// refused whole (400, or the backend's 500 for text PostgreSQL refuses) or
// stored as a job that the orchestrator's decoding reads back as exactly
// what was submitted.
func FuzzSubmit(f *testing.F) {
	for _, s := range []string{
		`{"script":{"type":"BASH","content":"echo hi"}}`,
		`{"name":"Nightly report","priority":5,"timeout":"30s","script":{"type":"PYTHON","content":"print('hello')\n"},
		  "environment":{"REPORT_DAYS":"7"},"inputData":{"orderId": 1234, "html": "<b>&</b>"},
		  "resources":{"cpuLimit":0.5,"memoryLimit":536870912,"diskLimit":1073741824,"pidsLimit":100},
		  "retryPolicy":{"maxAttempts":2,"backoffType":"exponential","backoffDelay":5}}`,
		`{"name":"Uptime","userId":"u_1","script":{"type":"BASH","content":"uptime","workingDirectory":"/srv"},
		  "servers":[{"name":"web-01","host":"10.0.0.21","username":"deploy","privateKey":"-----BEGIN KEY-----\nAAAA\n","passphrase":"pp"}]}`,
		`{"script":{"type":"BASH","content":"df"},"timeout":"5m","servers":[
		  {"name":"a","host":"10.0.0.1","port":2222,"username":"u","privateKey":"k","password":"ignored"},
		  {"host":"10.0.0.2","username":"v","password":"pw"}]}`,
		`{"http":{"method":"GET","url":"https://example.com","headers":{"A":"b"},"body":"{}"},"timeout":"10s"}`,
		`{"script":{"type":"BASH","content":"x"},"scheduledFor":"2030-01-02T03:04:05.678901+02:00","priority":-3}`,
		`{"script":{"type":"BASH","content":"x"},"inputData":null,"environment":null,"servers":null}`,
		`{}`,
		`{"script":{"type":"BASH","content":"x"},"http":{"url":"u"}}`,
		`{"script":{"type":"RUBY"},"timeout":"-1s"}`,
		`{"script":{"type":"BASH","content":"x"},"timeout":"9999999999h"}`,
		`{"script":{"type":"BASH","content":"x"},"servers":[{"host":"h","username":"u"}]}`,
		`{"http":{"url":"u"},"servers":[{"host":"h","username":"u","password":"p"}]}`,
		`{"script":{"type":"BASH","content":"a\u0000b"}}`,
		`{"script":{"type":"BASH","content":"\ud800"}}`,
		"{\"script\":{\"type\":\"BASH\",\"content\":\"\xff\"}}",
		`{"script":{"type":"BASH","content":"x"},"priority":1e3}`,
		`{"script":{"type":"BASH","content":"x"},"environment":{"N":7}}`,
		`{"SCRIPT":{"Type":"BASH","content":"x"},"script":{"type":"NODEJS","content":"y"}}`,
		`[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	st, err := Open(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	now := time.Date(2025, 10, 22, 14, 3, 11, 512e6, time.UTC)
	srv := NewServer(st, ServerOptions{Token: testToken, Now: func() time.Time { return now }})

	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/jobs", bytes.NewReader(body)))
		var resp struct{ ID, Error string }
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("%d with a body that is not JSON: %q", rec.Code, rec.Body)
		}
		var req SubmitRequest
		decoded := json.Unmarshal(body, &req) == nil
		cleanText := utf8.Valid(body) && !bytes.Contains(body, []byte(`\u0000`))
		switch {
		case rec.Code == http.StatusInternalServerError && resp.Error == errInvalidText.Error() && !cleanText:
			return
		case rec.Code == http.StatusBadRequest && resp.Error != "":
			if decoded && cleanText {
				if _, verr := req.validate(); verr == nil {
					t.Fatalf("a valid request was refused: %s", resp.Error)
				}
			}
			return
		case rec.Code != http.StatusCreated || resp.ID == "" || !decoded:
			t.Fatalf("%d %q for %q", rec.Code, rec.Body, body)
		}
		j, err := getJob(t.Context(), st.db, resp.ID)
		if err != nil {
			t.Fatal(err)
		}
		// The job as the queue serves it, decoded as the poller does.
		wire, err := json.Marshal(j.wire())
		if err != nil {
			t.Fatal(err)
		}
		var job backend.Job
		if err := json.Unmarshal(wire, &job); err != nil {
			t.Fatalf("the stored job does not decode: %v\n%s", err, wire)
		}
		checkStored(t, req, job, resp.ID, now)
		_, _ = jobspec.Build(job, "exec_1", time.Hour) // plans or refuses; never panics
	})
}

func checkStored(t *testing.T, req SubmitRequest, job backend.Job, id string, now time.Time) {
	t.Helper()
	ex, md := job.Execution, job.Metadata
	wantType, wantTarget := "container", backend.TargetLocal
	if len(req.Servers) > 0 {
		wantType, wantTarget = "ssh", backend.TargetServer
	}
	scheduled := now
	if req.ScheduledFor != nil {
		scheduled = *req.ScheduledFor
	}
	timeout := DefaultTimeout
	if req.Timeout != "" {
		timeout, _ = time.ParseDuration(req.Timeout)
	}
	fail := func(what string, got, want any) {
		t.Helper()
		t.Fatalf("stored %s = %#v, submitted %#v", what, got, want)
	}
	switch {
	case job.ID != id || job.Type != wantType || ex.Target.Type != wantTarget || job.Attempts != 0:
		fail("job", job, req)
	case job.Priority != req.Priority:
		fail("priority", job.Priority, req.Priority)
	case job.ScheduledFor.UnixMilli() != scheduled.UnixMilli() || job.CreatedAt.UnixMilli() != now.UnixMilli():
		fail("times", []time.Time{job.ScheduledFor, job.CreatedAt}, scheduled)
	case ex.Timeout.Duration() != timeout:
		fail("timeout", ex.Timeout.Duration(), timeout)
	case !reflect.DeepEqual(orEmpty(ex.Environment), orEmpty(req.Environment)):
		fail("environment", ex.Environment, req.Environment)
	case !bytes.Equal(normJSON(ex.InputData), normJSON(req.InputData)):
		fail("inputData", string(ex.InputData), string(req.InputData))
	case !reflect.DeepEqual(ex.Resources, req.Resources) || !reflect.DeepEqual(ex.RetryPolicy, req.RetryPolicy):
		fail("limits", []any{ex.Resources, ex.RetryPolicy}, []any{req.Resources, req.RetryPolicy})
	case (ex.Script == nil) != (req.Script == nil) || ex.Script != nil && *ex.Script != *req.Script:
		fail("script", ex.Script, req.Script)
	case (ex.HTTP == nil) != (req.HTTP == nil):
		fail("http", ex.HTTP, req.HTTP)
	case ex.HTTP != nil && (ex.HTTP.Method != req.HTTP.Method || ex.HTTP.URL != req.HTTP.URL || ex.HTTP.Body != req.HTTP.Body ||
		!reflect.DeepEqual(orEmpty(ex.HTTP.Headers), orEmpty(req.HTTP.Headers))):
		fail("http", ex.HTTP, req.HTTP)
	case md.UserID != cmpOr(req.UserID, DefaultUserID) || md.TriggeredBy != "manual":
		fail("user", md.UserID, req.UserID)
	case req.Name != "" && md.EventName != req.Name || req.Name == "" && !strings.HasPrefix(md.EventName, "job "):
		fail("name", md.EventName, req.Name)
	case md.MultiServer != (len(req.Servers) > 1) || md.MultiServer && len(md.Servers) != len(req.Servers):
		fail("servers", md.Servers, req.Servers)
	}
	if len(req.Servers) == 0 {
		return
	}
	servers := md.Servers
	if !md.MultiServer {
		if ex.Target.ServerDetails == nil {
			fail("server", nil, req.Servers[0])
		}
		servers = []backend.ServerDetails{*ex.Target.ServerDetails}
	}
	for i, s := range req.Servers {
		want := backend.ServerDetails{ID: servers[i].ID, Name: cmpOr(s.Name, s.Host), Host: s.Host,
			Port: s.Port, Username: s.Username, PrivateKey: s.PrivateKey.Reveal(), Passphrase: s.Passphrase.Reveal()}
		if want.Port == 0 {
			want.Port = 22
		}
		if want.PrivateKey == "" {
			want.Password = s.Password.Reveal()
		}
		if _, err := strconv.ParseInt(servers[i].ID.String(), 10, 64); err != nil || servers[i] != want {
			fail("server "+strconv.Itoa(i), servers[i], want)
		}
	}
}

func orEmpty[M ~map[string]string](m M) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(map[string]string(m))
}

// normJSON is JSON as json.Marshal stores a RawMessage (compact, HTML
// escaped); absent inputData is stored as {}.
func normJSON(b []byte) []byte {
	if len(b) == 0 {
		b = []byte("{}")
	}
	var c, esc bytes.Buffer
	if json.Compact(&c, b) != nil {
		return b
	}
	json.HTMLEscape(&esc, c.Bytes())
	return esc.Bytes()
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
