package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// jobSeeds are job JSON as the queue serves it: the API page's examples
// and the shapes and quirks the decoder is lenient about. jobspec, docker
// and ssh fuzz the same documents further down the pipeline.
var jobSeeds = []string{
	`{"id":"j","execution":{"script":{"type":"BASH","content":"echo hi"}}}`,
	`{"id":"j","execution":{"script":{"type":"NODEJS","content":"1"},"timeout":"5000000000"}}`,
	`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"environment":{"N":7,"B":true,"S":"s","Z":null}}}`,
	`{"id":"j","execution":{"script":{"type":"HTTP_REQUEST"},"http":{"method":"post","url":"http://x/y","headers":{"A":"b"},"body":"{}"}}}`,
	`{"id":"j","execution":{"target":{"type":"local"}}}`,
	`{"id":"j","execution":{"script":{"type":"RUBY","content":"x"}}}`,
	`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"target":{"type":"server","serverId":9}}}`,
	`{"id":"j","execution":{"script":{"type":"PYTHON","content":"print(1)","workingDirectory":"../etc"},"timeout":1.5,"inputData":null}}`,
	`{"id":12,"execution":{"script":{"type":"bash","content":"x"},"timeout":-1,"resources":{"cpuLimit":1e308,"memoryLimit":-1,"pidsLimit":9223372036854775807}}}`,
	`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"timeout":9.2e18}}`,
	`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"timeout":"NaN"}}`,
	`{"id":"j","createdAt":"0000-01-01T00:00:00+01:00","scheduledFor":"9999-12-31T23:59:59-23:59","execution":{}}`,
	`{"id":"job_x","type":"ssh","execution":{"script":{"type":"BASH","content":"uptime"},"target":{"type":"server","serverId":"3",
	  "serverDetails":{"id":"3","name":"web-01","host":"fe80::1","port":22,"username":"deploy","password":"p"}}},
	  "metadata":{"eventId":"12","multiServer":true,"servers":[{"id":"1","name":"a","host":"h1","username":"u","password":"p"},
	  {"id":2,"host":"h2","port":70000,"username":"u","privateKey":"k"}]}}`,
	`{"id":"j","execution":{"script":{"type":"BASH","content":"x"},"environment":{"CRONIUM_JOB_ID":"spoof","A=B":"1","":"e","NUL":"a\u0000b"}}}`,
	`{"ID":"upper","Execution":{"Script":{"Type":"BASH","Content":"x"}}}`,
	`{"id":"","execution":{}}`,
	`{"id":{"nested":1}}`,
	`[1,2]`,
	`null`,
	`{"id":"j","execution":{"timeout":"soon"}}`,
}

// addJobSeeds adds jobSeeds and the files of testdata/ to f.
func addJobSeeds(f *testing.F) {
	for _, s := range jobSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(readTestdata("container-job.json")))
	f.Add([]byte(readTestdata("ssh-job.json")))
}

// FuzzDecodeJobs decodes one element of the queue's "jobs" as PollJobs
// does, then journals and restores it as the job actor does (json.Marshal,
// json.Unmarshal). A job either decodes, with an id, or is reported in a
// BadJobsError; a decoded job survives the journal unchanged.
func FuzzDecodeJobs(f *testing.F) {
	addJobSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		jobs, err := decodeJobs([]json.RawMessage{raw})
		var bad *BadJobsError
		switch {
		case err == nil && len(jobs) == 1:
		case errors.As(err, &bad) && len(jobs) == 0:
			if bad.Err == nil || len(bad.IDs) > 1 || len(bad.IDs) == 1 && bad.IDs[0] == "" {
				t.Fatalf("BadJobsError %+v", bad)
			}
			_ = bad.Error()
			return
		default:
			t.Fatalf("decodeJobs: %d jobs, err %v", len(jobs), err)
		}
		j := jobs[0]
		if j.ID == "" {
			t.Fatal("decoded a job without id")
		}
		journaled, err := json.Marshal(j)
		if err != nil {
			t.Fatalf("a decoded job cannot be journaled: %v", err)
		}
		restored, err := decodeJobs([]json.RawMessage{journaled})
		if err != nil || len(restored) != 1 {
			t.Fatalf("a journaled job does not decode: %v\n%s", err, journaled)
		}
		again, err := json.Marshal(restored[0])
		if err != nil || !bytes.Equal(again, journaled) {
			t.Fatalf("the journal round trip changed the job:\n%s\n%s (%v)", journaled, again, err)
		}
	})
}
