package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
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
// report included (newLogger makes our handler slog's default), every
// record carries orchestrator_id (newDaemon makes the daemon's logger the
// default, so hollywood's records too), and a job's logs carry its job
// and execution ids as fields.
//
// The job holds its output after 2 lines until the crash detaches it: the
// crash lands while it runs.
func TestLogsAreStructuredWithJobFields(t *testing.T) {
	logger, logs := captureLogs(t, "json")
	o := startOps(t, logger)
	id := o.submit(t, bash(map[string]string{"FAKE_LINES": "20", "FAKE_INTERVAL": "10ms", "FAKE_SLEEP": "1s",
		"TEST_HOLD_AFTER": "2"}))
	testenv.Eventually(t, testenv.Patience, "the job to run", func() bool { return o.fake.Starts() == 1 })
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
			return r["job_id"] == id && e != ""
		}},
	}
	for _, c := range checks {
		if find(recs, c.match) == nil {
			t.Errorf("no log record: %s", c.what)
		}
	}
	orchID, _ := recs[0]["orchestrator_id"].(string)
	for _, r := range recs {
		if got, _ := r["orchestrator_id"].(string); orchID == "" || got != orchID {
			t.Errorf("record without orchestrator_id %q: %v", orchID, r)
		}
	}
}

// A job's secrets (environment values, SSH passwords) appear in none of
// what the orchestrator emits: logs, /metrics, the admin API and status
// page, the CLI's output, and the jobs' own output and error texts.
// Container jobs run on the scripted fake executor; SSH jobs on the
// daemon's own SSH executor against a real sshd, one with the right
// password and one with a wrong one. The jobs that run hold until the
// test has looked at the daemon.
func TestSecretsAreNeverEmitted(t *testing.T) {
	const envSecret, wrongPassword = "env-secret-9c1f7e2ab4", "ssh-password-5d8e3b6f07"
	srv := testenv.StartSSHD(t, 0)
	logger, logs := captureLogs(t, "json")
	env := map[string]string{"API_KEY": envSecret, "DB_PASSWORD": envSecret}
	emitted := map[string]string{}

	o := startOps(t, logger)
	local := o.submit(t, bash(withEnv(env, "FAKE_LINES", "3", "FAKE_SLEEP", "300ms", "TEST_HOLD_AFTER", "2")))
	failing := o.submit(t, bash(withEnv(env, "FAKE_ERROR", "could not pull the image")))
	testenv.Eventually(t, testenv.Patience, "the container job to run", func() bool { return o.fake.Holding() == 1 })
	o.observe(t, emitted, "fake executor")
	o.fake.Release()
	for _, id := range []string{local, failing} {
		v := o.finished(t, id)
		emitted["job "+id+" output and error"] = v.Output.Stdout + v.Output.Stderr + v.Result.Error
	}
	_, err := runCmd(runCancel, local, "--admin", o.admin)
	emitted["cancel error"] = errText(err)
	emitted["/metrics (fake executor, after the jobs)"] = o.scrape(t)

	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(srv.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startDaemon(t, logger, nil, func(c *config.Config) { c.Docker.Enabled = false; c.SSH.KnownHosts = known })
	sshJob := func(password string) embedded.SubmitRequest {
		req := bash(env)
		req.Script.Content = "echo started; while [ ! -e /tmp/job-may-end ]; do sleep 0.05; done"
		req.Servers = []embedded.ServerSpec{{Name: "box", Host: srv.Host, Port: srv.Port, Username: srv.User,
			Password: secret.Value(password)}}
		return req
	}
	good, bad := r.submit(t, sshJob(srv.Password)), r.submit(t, sshJob(wrongPassword))
	testenv.Eventually(t, testenv.Patience, "the SSH job to run", func() bool {
		out, _ := r.store.Output(t.Context(), good)
		return strings.Contains(out.Stdout, "started")
	})
	r.observe(t, emitted, "ssh executor")
	if out, err := srv.Exec("touch /tmp/job-may-end"); err != nil {
		t.Fatalf("letting the SSH job end: %v %s", err, out)
	}
	vGood, vBad := r.finished(t, good), r.finished(t, bad)
	for _, v := range []embedded.JobView{vGood, vBad} {
		emitted["job "+v.ID+" output and error"] = v.Output.Stdout + v.Output.Stderr + v.Result.Error
	}
	metrics := r.scrape(t)
	emitted["/metrics (ssh executor)"] = metrics
	emitted["logs"] = logs()

	// The secrets did reach the executors: the right password ran the job,
	// the wrong one was refused by sshd.
	if vGood.Status != backend.StatusCompleted || vGood.Output.Stdout != "started\n" {
		t.Errorf("SSH job with the right password: %s %q %q", vGood.Status, vGood.Output.Stdout, vGood.Output.Stderr)
	}
	if vBad.Status != backend.StatusFailed ||
		testenv.MetricValue(metrics, "cronium_orchestrator_ssh_connect_failures_total", "class", "auth") < 1 {
		t.Errorf("SSH job with a wrong password: %s %q, not refused by sshd", vBad.Status, vBad.Output.Stderr)
	}
	for where, text := range emitted {
		for _, s := range []string{envSecret, wrongPassword, srv.Password} {
			if strings.Contains(text, s) {
				t.Errorf("a secret (%s...) appears in %s", s[:6], where)
			}
		}
	}
}

// observe collects what the daemon shows while jobs run: the admin API
// and status page, the CLI's tree, and /metrics.
func (o *opsDaemon) observe(t *testing.T, emitted map[string]string, which string) {
	t.Helper()
	for _, path := range []string{"/", "/live", "/api/actors", "/api/jobs?lines=100"} {
		code, body := testenv.Get(t, o.admin+path)
		if code != 200 {
			t.Fatalf("admin %s: %d %s", path, code, body)
		}
		emitted["admin "+path+" ("+which+")"] = body
	}
	out, err := runCmd(runActors, "--json", "--admin", o.admin)
	emitted["actors --json ("+which+")"] = out + errText(err)
	emitted["/metrics ("+which+")"] = o.scrape(t)
}

// withEnv is env plus the given key, value pairs.
func withEnv(env map[string]string, kv ...string) map[string]string {
	out := maps.Clone(env)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
