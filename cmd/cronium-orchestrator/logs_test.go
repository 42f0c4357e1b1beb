package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/secret"
)

// records parses JSON-lines logs; every line must be a JSON object.
func records(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("a log line is not JSON (%v): %s", err, line)
		}
		out = append(out, r)
	}
	return out
}

func find(recs []map[string]any, match func(map[string]any) bool) map[string]any {
	for _, r := range recs {
		if match(r) {
			return r
		}
	}
	return nil
}

// With log.format json every line is structured, hollywood's own crash
// report included (newLogger makes our handler slog's default), and a
// job's logs carry its job and execution ids as fields.
func TestLogsAreStructuredWithJobFields(t *testing.T) {
	logger, logs := captureLogs(t, "json")
	o := startOps(t, logger)
	id := o.submit(t, bash(map[string]string{"FAKE_LINES": "20", "FAKE_INTERVAL": "10ms"}))
	testenv.Eventually(t, 5*time.Second, "the job to run", func() bool { return o.fake.Starts() == 1 })
	if _, err := runCmd(runActors, "crash", "supervisor/root/job/"+id, "--admin", o.admin); err != nil {
		t.Fatal(err)
	}
	o.finished(t, id)

	recs := records(t, logs())
	checks := []struct {
		what  string
		match func(map[string]any) bool
	}{
		{"hollywood's crash report, through our handler", func(r map[string]any) bool {
			return r["msg"] == "Actor crashed and restarted" && r["level"] == "ERROR" &&
				r["pid"] == "supervisor/root/job/"+id && strings.Contains(r["reason"].(string), "injected crash")
		}},
		{"the supervisor's record of the crash, with job_id", func(r map[string]any) bool {
			return r["msg"] == "actor crashed and was restarted" && r["job_id"] == id && r["kind"] == "job"
		}},
		{"a job record with job_id and execution_id fields", func(r map[string]any) bool {
			e, _ := r["execution_id"].(string)
			return r["job_id"] == id && e != "" && r["orchestrator_id"] != nil
		}},
	}
	for _, c := range checks {
		if find(recs, c.match) == nil {
			t.Errorf("no log record: %s", c.what)
		}
	}
}

// A job's secrets (an environment value, an SSH server's password) appear
// in none of what the orchestrator emits: logs, /metrics, the admin API
// and status page, the CLI's output, and the job's own error text.
func TestSecretsAreNeverEmitted(t *testing.T) {
	const envSecret, sshPassword = "env-secret-9c1f7e2ab4", "ssh-password-5d8e3b6f07"
	logger, logs := captureLogs(t, "json")
	o := startOps(t, logger)
	env := map[string]string{"API_KEY": envSecret, "DB_PASSWORD": envSecret, "FAKE_LINES": "3", "FAKE_SLEEP": "300ms"}
	local := o.submit(t, bash(env))
	ssh := bash(env)
	ssh.Servers = []embedded.ServerSpec{{Name: "box", Host: "127.0.0.1", Port: 2222, Username: "deploy",
		Password: secret.Value(sshPassword)}}
	remote := o.submit(t, ssh)
	failing := o.submit(t, bash(map[string]string{"API_KEY": envSecret, "FAKE_ERROR": "could not pull the image"}))
	testenv.Eventually(t, 5*time.Second, "the jobs to run", func() bool { return o.fake.Starts() == 2 })

	emitted := map[string]string{}
	for _, path := range []string{"/", "/live", "/api/actors", "/api/jobs?lines=100"} {
		emitted["admin "+path] = get(t, o.admin+path)
	}
	out, err := runCmd(runActors, "--json", "--admin", o.admin)
	emitted["actors --json"] = out + errText(err)
	for _, id := range []string{local, remote, failing} {
		v := o.finished(t, id)
		emitted["job "+id+" output and error"] = v.Output.Stdout + v.Output.Stderr + v.Result.Error
	}
	_, err = runCmd(runCancel, local, "--admin", o.admin)
	emitted["cancel error"] = errText(err)
	emitted["/metrics"] = o.scrape(t)
	emitted["logs"] = logs()

	if o.fake.Starts() != 2 || !strings.Contains(emitted["logs"], remote) {
		t.Fatalf("the SSH job did not run (starts %d)", o.fake.Starts())
	}
	for where, text := range emitted {
		for _, s := range []string{envSecret, sshPassword} {
			if strings.Contains(text, s) {
				t.Errorf("a secret appears in %s", where)
			}
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
