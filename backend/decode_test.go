package backend

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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

// Values beyond what the types hold: a timeout past int64 saturates (Go's
// float conversion would make it negative on amd64), NaN is refused, a
// job whose id cannot be read is counted, a row with a numeric id decodes.
func TestDecodeOddValues(t *testing.T) {
	for _, tt := range []struct {
		timeout string
		want    Nanoseconds
		err     bool
	}{
		{"1e30", math.MaxInt64, false},
		{"-1e30", math.MinInt64, false},
		{`"Inf"`, math.MaxInt64, false},
		{`"NaN"`, 0, true},
		{"-5000000000", Nanoseconds(-5 * time.Second), false},
	} {
		var n Nanoseconds
		if err := n.UnmarshalJSON([]byte(tt.timeout)); (err != nil) != tt.err || n != tt.want {
			t.Errorf("timeout %s: %d, %v; want %d, error %v", tt.timeout, n, err, tt.want, tt.err)
		}
	}
	_, err := decodeJobs([]json.RawMessage{json.RawMessage(`{"id":{"uuid":"x"}}`), json.RawMessage(`{"id":"","execution":{}}`)})
	var bad *BadJobsError
	if !errors.As(err, &bad) || bad.Unidentified != 2 || len(bad.IDs) != 0 ||
		!strings.Contains(err.Error(), "2 claimed job(s) without a readable id") {
		t.Fatalf("err = %v", err)
	}
	// Each job named keeps its own reason, whatever failed first.
	_, err = decodeJobs([]json.RawMessage{json.RawMessage(`{"id":{"uuid":"x"}}`), json.RawMessage(`{"id":7}`),
		json.RawMessage(`{"id":"job_bad","execution":{"timeout":"soon"}}`)})
	if !errors.As(err, &bad) || len(bad.IDs) != 2 || bad.IDs[0] != "7" || bad.IDs[1] != "job_bad" ||
		len(bad.Reasons) != 2 || !strings.Contains(bad.Reasons[0], "Job.id") || !strings.Contains(bad.Reasons[1], "timeout") {
		t.Fatalf("err = %v, %+v", err, bad)
	}
	var rows []JobRow
	if err := json.Unmarshal([]byte(`[{"id":424242,"status":"claimed"},{"id":"job_x","status":"running"}]`), &rows); err != nil ||
		len(rows) != 2 || rows[0].ID != "424242" || rows[0].Status != "claimed" || rows[1].ID != "job_x" {
		t.Fatalf("rows %+v, %v", rows, err)
	}
}
