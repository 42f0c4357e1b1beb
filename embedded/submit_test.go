package embedded

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
)

const testKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"

// The queue serves a submitted job in exactly the page's Job JSON.
func TestSubmitServesThePageShape(t *testing.T) {
	tests := []struct {
		name string
		req  SubmitRequest
		want string // the queue's job, with id and timestamps as placeholders
	}{
		{
			name: "container",
			req: SubmitRequest{Name: "Nightly report", Priority: 5, Timeout: "30s",
				Script:      &backend.Script{Type: "PYTHON", Content: "print('hello')\n"},
				Environment: map[string]string{"REPORT_DAYS": "7"}, InputData: json.RawMessage(`{"orderId": 1234}`),
				Resources: &backend.Resources{CPULimit: 0.5, MemoryLimit: 536870912, DiskLimit: 1073741824, PidsLimit: 100}},
			want: `{"id":"ID","type":"container","priority":5,"createdAt":"TS","scheduledFor":"TS","attempts":0,
				"execution":{"target":{"type":"local"},
					"script":{"type":"PYTHON","content":"print('hello')\n","workingDirectory":""},
					"environment":{"REPORT_DAYS":"7"},"timeout":30000000000,"inputData":{"orderId":1234},"variables":{},
					"resources":{"cpuLimit":0.5,"memoryLimit":536870912,"diskLimit":1073741824,"pidsLimit":100}},
				"metadata":{"eventName":"Nightly report","triggeredBy":"manual","logId":1,"originalType":"SCRIPT","eventId":1,"userId":"standalone"}}`,
		},
		{
			name: "ssh",
			req: SubmitRequest{Name: "Uptime", Script: &backend.Script{Type: "BASH", Content: "uptime", WorkingDirectory: "/srv"},
				Servers: []ServerSpec{{Name: "web-01", Host: "10.0.0.21", Username: "deploy", PrivateKey: testKey, Passphrase: "pp"}}},
			want: `{"id":"ID","type":"ssh","priority":0,"createdAt":"TS","scheduledFor":"TS","attempts":0,
				"execution":{"target":{"type":"server","serverId":"1","serverDetails":{"id":"1","name":"web-01","host":"10.0.0.21",
						"port":22,"username":"deploy","privateKey":"` + strings.ReplaceAll(testKey, "\n", `\n`) + `","passphrase":"pp"}},
					"script":{"type":"BASH","content":"uptime","workingDirectory":"/srv"},
					"environment":{},"timeout":3600000000000,"inputData":{},"variables":{}},
				"metadata":{"eventName":"Uptime","triggeredBy":"manual","logId":1,"originalType":"SCRIPT","eventId":"1","userId":"standalone"}}`,
		},
		{
			name: "multi-server",
			req: SubmitRequest{Name: "Fleet", Script: &backend.Script{Type: "BASH", Content: "df"}, Timeout: "5m",
				Servers: []ServerSpec{
					{Name: "a", Host: "10.0.0.1", Port: 2222, Username: "u", PrivateKey: testKey},
					{Name: "b", Host: "10.0.0.2", Username: "v", Password: "pw"},
				}},
			want: `{"id":"ID","type":"ssh","priority":0,"createdAt":"TS","scheduledFor":"TS","attempts":0,
				"execution":{"target":{"type":"server","serverId":"1","serverDetails":{"id":"1","name":"a","host":"10.0.0.1",
						"port":2222,"username":"u","privateKey":"` + strings.ReplaceAll(testKey, "\n", `\n`) + `"}},
					"script":{"type":"BASH","content":"df","workingDirectory":""},
					"environment":{},"timeout":300000000000,"inputData":{},"variables":{}},
				"metadata":{"eventName":"Fleet","triggeredBy":"manual","logId":1,"originalType":"SCRIPT","eventId":"1","userId":"standalone",
					"multiServer":true,"servers":[
						{"id":"1","name":"a","host":"10.0.0.1","port":2222,"username":"u","privateKey":"` + strings.ReplaceAll(testKey, "\n", `\n`) + `"},
						{"id":"2","name":"b","host":"10.0.0.2","port":22,"username":"v","password":"pw"}]}}`,
		},
		{
			name: "http request",
			req:  SubmitRequest{HTTP: &backend.HTTPRequest{Method: "GET", URL: "https://example.com"}, Timeout: "10s"},
			want: `{"id":"ID","type":"container","priority":0,"createdAt":"TS","scheduledFor":"TS","attempts":0,
				"execution":{"target":{"type":"local"},"http":{"method":"GET","url":"https://example.com"},
					"environment":{},"timeout":10000000000,"inputData":{},"variables":{}},
				"metadata":{"eventName":"job 1","triggeredBy":"manual","logId":1,"originalType":"HTTP_REQUEST","eventId":1,"userId":"standalone"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.submit(tt.req)
			st, resp := e.raw("GET", "/api/internal/jobs/queue?batchSize=5", "", nil)
			jobs, _ := resp["jobs"].([]any)
			if st != 200 || len(jobs) != 1 || resp["count"] != 1.0 {
				t.Fatalf("queue = %d %v", st, resp)
			}
			got := jobs[0].(map[string]any)
			if got["id"] != id || !strings.HasPrefix(id, "job_") || len(id) != len("job_")+12 {
				t.Fatalf("id %v, submitted %s", got["id"], id)
			}
			for _, k := range []string{"createdAt", "scheduledFor"} {
				if _, err := time.Parse(time.RFC3339Nano, got[k].(string)); err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				got[k] = "TS"
			}
			got["id"] = "ID"
			var want map[string]any
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Fatalf("queue job\n got %s\nwant %s", g, w)
			}
		})
	}
}

// The same jobs decode with the orchestrator's client, and the servers
// are served by /credentials.
func TestSubmittedSSHJobThroughTheClient(t *testing.T) {
	e := newEnv(t)
	e.submit(SubmitRequest{Script: &backend.Script{Type: "BASH", Content: "df"}, Timeout: "90s",
		Servers: []ServerSpec{
			{Name: "a", Host: "10.0.0.1", Username: "u", PrivateKey: testKey},
			{Name: "b", Host: "10.0.0.2", Username: "v", Password: "pw"},
		}})
	j := e.claim("o1", 1)[0]
	if j.Execution.Timeout.Duration() != 90*time.Second || j.Metadata.EventID != "1" || !j.Metadata.MultiServer ||
		len(j.Metadata.Servers) != 2 || j.Execution.Target.ServerDetails.PrivateKey != testKey {
		t.Fatalf("decoded job: %+v", j)
	}
	creds, err := e.client("o1").ServerCredentials(t.Context(), "2")
	if err != nil || creds.Host != "10.0.0.2" || creds.Password != "pw" || creds.Port != 22 || creds.PrivateKey != "" {
		t.Fatalf("credentials = %+v, %v", creds, err)
	}
}

func TestSubmitRefusesInvalidJobs(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		body string
		want string
	}{
		{"nothing to run", `{}`, "script or http is required"},
		{"both", `{"script":{"type":"BASH","content":"x"},"http":{"url":"u"}}`, "exclusive"},
		{"script type", `{"script":{"type":"RUBY","content":"x"}}`, "RUBY"},
		{"timeout", `{"script":{"type":"BASH","content":"x"},"timeout":"soon"}`, "timeout"},
		{"server without credentials", `{"script":{"type":"BASH","content":"x"},"servers":[{"host":"h","username":"u"}]}`, "privateKey or password"},
		{"every problem at once", `{"script":{"type":"RUBY"},"timeout":"-1s"}`, "timeout"},
		{"not JSON", `{`, "invalid job"},
	}
	for _, tt := range tests {
		st, resp := e.raw("POST", "/api/jobs", tt.body, nil)
		if msg, _ := resp["error"].(string); st != 400 || !strings.Contains(msg, tt.want) {
			t.Errorf("%s: %d %v, want 400 with %q", tt.name, st, resp, tt.want)
		}
	}
	if st, resp := e.raw("POST", "/api/jobs", `{"script":{"type":"RUBY"},"timeout":"-1s"}`, nil); !strings.Contains(resp["error"].(string), "RUBY") {
		t.Errorf("not every problem reported: %d %v", st, resp)
	}
}

func TestPublicTokenWhenSet(t *testing.T) {
	e := newEnv(t)
	srv := NewServer(e.store, ServerOptions{Token: testToken, PublicToken: "pub"})
	for _, tt := range []struct {
		auth string
		want int
	}{{"", 401}, {"Bearer nope", 401}, {"Bearer pub", 200}, {"Bearer " + testToken, 401}} {
		rec := httptest.NewRecorder()
		req := mustRequest(t, "GET", "/api/jobs", tt.auth)
		srv.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("Authorization %q: %d, want %d", tt.auth, rec.Code, tt.want)
		}
	}
}

// A SubmitRequest shows no credential however it is encoded: only the
// body PublicClient.Submit sends carries them (TestSubmitServesThePageShape
// checks that they arrive).
func TestSubmitRequestNeverRevealsCredentials(t *testing.T) {
	const key, passphrase, password = "key-text-3f9a1c", "passphrase-7b2e4d", "password-5c8d0e"
	req := bashJob("true")
	req.Servers = []ServerSpec{
		{Name: "a", Host: "10.0.0.1", Username: "u", PrivateKey: key, Passphrase: passphrase},
		{Name: "b", Host: "10.0.0.2", Username: "v", Password: password},
	}
	js, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("submit", "request", req, "server", req.Servers[0])
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("submit", "request", req, "server", req.Servers[0])
	for name, text := range map[string]string{"json": string(js), "slog json": jsonLog.String(),
		"slog text": textLog.String(), "%+v": fmt.Sprintf("%+v", req), "%#v": fmt.Sprintf("%#v", req)} {
		for _, c := range []string{key, passphrase, password} {
			if strings.Contains(text, c) {
				t.Errorf("%s reveals a credential: %s", name, text)
			}
		}
		if !strings.Contains(text, "10.0.0.2") {
			t.Errorf("%s lost the request: %s", name, text)
		}
	}
	wire, err := json.Marshal(req.wire())
	if err != nil {
		t.Fatal(err)
	}
	var back SubmitRequest
	if err := json.Unmarshal(wire, &back); err != nil || !reflect.DeepEqual(back, req) {
		t.Fatalf("the wire body does not decode to the request: %+v, %v", back, err)
	}
}

// A 404 means "no such job" only on a job's own path; against a server
// without the public API, Submit and List say what happened.
func TestPublicClientAgainstAWrongServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	c := NewPublicClient(srv.URL, "")
	ctx := t.Context()
	_, submitErr := c.Submit(ctx, bashJob("true"))
	_, listErr := c.List(ctx, "", 0)
	for name, err := range map[string]error{"submit": submitErr, "list": listErr} {
		if err == nil || errors.Is(err, ErrJobNotFound) || !strings.Contains(err.Error(), "404") ||
			!strings.Contains(err.Error(), srv.URL) || !strings.Contains(err.Error(), "wrong server") {
			t.Errorf("%s: %v; want a 404 naming the server, not ErrJobNotFound", name, err)
		}
	}
	if _, err := c.Job(ctx, "job_x"); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("job: %v, want ErrJobNotFound", err)
	}
}
