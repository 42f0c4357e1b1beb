package daemon

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/secret"
)

// outputCalls records the bodies of the calls that carry job output to
// the backend: execution updates and /complete.
type outputCalls struct {
	mu     sync.Mutex
	bodies map[string][]string // by "update" or "complete"
}

func (o *outputCalls) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := ""
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/internal/executions/") && strings.HasSuffix(r.URL.Path, "/update"):
			kind = "update"
		case strings.HasPrefix(r.URL.Path, "/api/internal/jobs/") && strings.HasSuffix(r.URL.Path, "/complete"):
			kind = "complete"
		}
		if kind != "" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			o.mu.Lock()
			o.bodies[kind] = append(o.bodies[kind], string(body))
			o.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

func (o *outputCalls) all() map[string][]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string][]string{}
	for k, v := range o.bodies {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Secrets a job prints leave the orchestrator as [MASKED]: a secret-named
// environment variable's value, the backend's API token, an SSH job's
// password, or its key's passphrase and a line of the key. They are printed on
// stdout one byte per write (the fake executor's way), so every secret
// arrives split across writes. Each job holds its output after its first
// line until the test has looked at it while it runs: in the execution
// updates, on the admin API and status page; then in /complete and the
// final updates; and the masked counter counts each occurrence once.
func TestSecretsAreMaskedInJobOutput(t *testing.T) {
	store, err := embedded.Open(filepath.Join(t.TempDir(), "cronium.db"))
	if err != nil {
		t.Fatal(err)
	}
	token := secret.Value("api-token-" + t.Name())
	calls := &outputCalls{bodies: map[string][]string{}}
	srv := httptest.NewServer(calls.wrap(embedded.NewServer(store, embedded.ServerOptions{Token: token})))
	t.Cleanup(func() { srv.Close(); store.Close() })
	f := daemontest.NewFake()
	s := &stack{t: t, store: store, url: srv.URL, token: token}
	s.start(map[jobspec.Kind]executors.Executor{jobspec.KindContainer: f, jobspec.KindSSH: f}, daemontest.Listeners)

	const (
		dbPassword = "db-pw-hunter2"
		sshPass    = "ssh-pw-5678"
		passphrase = "key-phrase-90"
		keyLine    = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
		key        = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + keyLine + "\n-----END OPENSSH PRIVATE KEY-----\n"
	)
	secrets := []string{dbPassword, token.Reveal(), sshPass, passphrase, keyLine}
	env := func(stdout string) map[string]string {
		return map[string]string{"DB_PASSWORD": dbPassword, "FAKE_STDOUT": stdout,
			"FAKE_STDERR": "auth failed: " + dbPassword + "\n", "FAKE_LINES": "2", "TEST_HOLD_AFTER": "1"}
	}
	container := s.submit(bashJob("x", env("db="+dbPassword+" token="+token.Reveal()+"\n")))
	withKey := bashJob("x", env("phrase="+passphrase+" key="+keyLine+"\n"))
	withKey.Servers = []embedded.ServerSpec{{Name: "web", Host: "web.invalid", Username: "u",
		PrivateKey: key, Passphrase: passphrase}}
	withPassword := bashJob("x", env("ssh="+sshPass+"\n"))
	withPassword.Servers = []embedded.ServerSpec{{Name: "db", Host: "db.invalid", Username: "u", Password: sshPass}}
	want := map[string]string{
		container:              "db=[MASKED] token=[MASKED]\n",
		s.submit(withKey):      "phrase=[MASKED] key=[MASKED]\n",
		s.submit(withPassword): "ssh=[MASKED]\n",
	}
	const wantErr = "auth failed: [MASKED]\n"

	// Running: each job's first line was shipped, masked.
	for id, line := range want {
		testenv.Eventually(t, testenv.Patience, "job "+id+"'s first line to be shipped", func() bool {
			o, _ := store.Output(t.Context(), id)
			return o.Stdout == line && o.Stderr == wantErr
		})
	}
	testenv.Eventually(t, testenv.Patience, "every job to hold", func() bool { return f.Holding() == len(want) })
	admin := "http://" + s.daemon.AdminAddr()
	emitted := map[string]string{}
	for _, path := range []string{"/", "/live", "/api/jobs?lines=100"} {
		code, body := testenv.Get(t, admin+path)
		if code != http.StatusOK {
			t.Fatalf("admin %s: %d %s", path, code, body)
		}
		emitted["admin "+path] = body
	}
	for _, path := range []string{"/live", "/api/jobs?lines=100"} {
		for _, w := range []string{"db=[MASKED] token=[MASKED]", "phrase=[MASKED] key=[MASKED]", "ssh=[MASKED]",
			"auth failed: [MASKED]"} {
			if !strings.Contains(emitted["admin "+path], w) {
				t.Errorf("admin %s does not show %q:\n%s", path, w, emitted["admin "+path])
			}
		}
	}

	f.Release()
	for id, line := range want {
		v := s.wait(id, testenv.Patience)
		s.assertOneTerminalUpdate(t, v)
		stdout := line + lines(2)
		if v.Status != backend.StatusCompleted || v.Output.Stdout != stdout || v.Output.Stderr != wantErr {
			t.Errorf("job %s: %s, output %q / %q; want %q / %q", id, v.Status, v.Output.Stdout, v.Output.Stderr,
				stdout, wantErr)
		}
		if len(v.Executions) != 1 || v.Executions[0].Output != stdout || v.Executions[0].Error != wantErr {
			t.Errorf("job %s: executions %+v", id, v.Executions)
		}
	}
	s.jobsDone(t)

	got := calls.all()
	if len(got["complete"]) != len(want) || len(got["update"]) < 2*len(want) {
		t.Fatalf("%d /complete and %d execution updates recorded", len(got["complete"]), len(got["update"]))
	}
	for kind, bodies := range got {
		masked := 0
		for i, b := range bodies {
			emitted[fmt.Sprintf("%s body %d", kind, i)] = b
			if strings.Contains(b, "[MASKED]") {
				masked++
			}
		}
		if kind == "complete" && masked != len(want) || masked == 0 {
			t.Errorf("%d of %d %s bodies show [MASKED]", masked, len(bodies), kind)
		}
	}
	metrics := s.scrape(t)
	emitted["/metrics"] = metrics
	// Each occurrence once: 2+2+1 on stdout, one on each job's stderr.
	if n := testenv.MetricValue(metrics, "cronium_orchestrator_job_output_masked_total"); n != 8 {
		t.Errorf("job_output_masked_total = %v, want 8", n)
	}
	for where, text := range emitted {
		for _, sec := range secrets {
			if strings.Contains(text, sec) {
				t.Errorf("a secret (%s...) appears in %s", sec[:6], where)
			}
		}
	}
}
