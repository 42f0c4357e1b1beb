package backend

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The API page's examples: the container job verbatim, and an SSH job as
// the page describes it (string eventId, key text with real newlines,
// unknown fields). jobspec's tests read them too.
var (
	containerJobJSON = readTestdata("container-job.json")
	sshJobJSON       = readTestdata("ssh-job.json")
)

func readTestdata(name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestPollDecodesPageExamples(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"jobs":[`+containerJobJSON+`,`+sshJobJSON+`],"count":2}`)
	}))
	jobs, err := c.PollJobs(t.Context(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 {
		t.Fatalf("%d jobs", len(jobs))
	}
	ct, ssh := jobs[0], jobs[1]
	checks := []struct {
		name      string
		got, want any
	}{
		{"container timeout", ct.Execution.Timeout.Duration(), 30 * time.Second},
		{"container target", ct.Execution.Target.Type, TargetLocal},
		{"container eventId number", ct.Metadata.EventID.String(), "12"},
		{"container logId", ct.Metadata.LogID.String(), "345"},
		{"container memory", ct.Execution.Resources.MemoryLimit, int64(536870912)},
		{"container cpu", ct.Execution.Resources.CPULimit, 0.5},
		{"container backoff seconds", ct.Execution.RetryPolicy.BackoffDelay, 5.0},
		{"container script", ct.Execution.Script.Content, "print('hello')\n"},
		{"container createdAt", ct.CreatedAt.Equal(time.Date(2025, 10, 22, 14, 3, 11, 512e6, time.UTC)), true},
		{"ssh timeout", ssh.Execution.Timeout.Duration(), time.Hour},
		{"ssh eventId string", ssh.Metadata.EventID.String(), "41"},
		{"ssh server id", ssh.Execution.Target.ServerID.String(), "3"},
		{"ssh key newlines", ssh.Execution.Target.ServerDetails.PrivateKey,
			"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"},
		{"ssh passphrase", ssh.Execution.Target.ServerDetails.Passphrase, "pp"},
		{"ssh env number", ssh.Execution.Environment["N"], "7"},
		{"ssh env bool", ssh.Execution.Environment["DEBUG"], "true"},
		{"ssh no resources", ssh.Execution.Resources == nil, true},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestPollReportsUndecodableJobs(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, `{"jobs":[`+containerJobJSON+`,{"id":"job_bad","execution":{"timeout":"soon"}}],"count":2}`)
	}))
	jobs, err := c.PollJobs(t.Context(), 5)
	var bad *BadJobsError
	if !errors.As(err, &bad) || len(bad.IDs) != 1 || bad.IDs[0] != "job_bad" {
		t.Fatalf("err = %v, want BadJobsError for job_bad", err)
	}
	if len(jobs) != 1 || jobs[0].ID != "job_8fK2mQ9xZ1aB" {
		t.Fatalf("jobs = %+v, want the good one", jobs)
	}
}
