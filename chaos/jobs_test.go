package chaos_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"strings"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/secret"
)

// kind is one sort of job in the mix.
type kind string

const (
	short    kind = "container-short"
	long     kind = "container-long"
	large    kind = "container-large-output"
	helpers  kind = "container-helpers"
	secrets  kind = "container-secret-env"
	sshShort kind = "ssh-short"
	sshLong  kind = "ssh-long"
)

var kinds = []kind{short, long, large, helpers, secrets, sshShort, sshLong}

// plannedJob is a job with what it must print when nothing stops it.
type plannedJob struct {
	tag       string
	kind      kind
	req       embedded.SubmitRequest
	stdout    string // byte-exact, when it completes normally
	scriptOut string // the JSON its helpers set, "" when none
	variable  [2]string
	secret    string // a value it holds that must never be seen
	id        string // set once submitted
}

// countingScript prints "<tag> <i><pad>" for i in 1..n, sleeping between
// lines when pause is not "", in POSIX sh (the same over SSH).
func countingScript(tag string, n int, pad, pause string) (string, string) {
	sleep := ""
	if pause != "" {
		sleep = "sleep " + pause + "; "
	}
	script := fmt.Sprintf("i=1; while [ $i -le %d ]; do echo \"%s $i%s\"; %si=$((i+1)); done\n", n, tag, pad, sleep)
	var want strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&want, "%s %d%s\n", tag, i, pad)
	}
	return script, want.String()
}

// planJobs makes n jobs of every kind in turn, with sizes drawn from rng.
func planJobs(n int, rng *mrand.Rand, ssh *testenv.SSHD) []*plannedJob {
	var jobs []*plannedJob
	for i := range n {
		k := kinds[i%len(kinds)]
		if ssh == nil && (k == sshShort || k == sshLong) {
			k = short
		}
		tag := fmt.Sprintf("j%04d", i)
		j := &plannedJob{tag: tag, kind: k}
		bash := func(script string) *backend.Script { return &backend.Script{Type: "BASH", Content: script} }
		switch k {
		case short, sshShort:
			s, want := countingScript(tag, 1+rng.IntN(50), "", "")
			j.req, j.stdout = embedded.SubmitRequest{Script: bash(s)}, want
		case long, sshLong:
			s, want := countingScript(tag, 10+rng.IntN(30), "", "0.1")
			j.req, j.stdout = embedded.SubmitRequest{Script: bash(s)}, want
		case large:
			s, want := countingScript(tag, 3000+rng.IntN(3000), " "+strings.Repeat("x", 50), "")
			j.req, j.stdout = embedded.SubmitRequest{Script: bash(s)}, want
		case helpers:
			j.variable = [2]string{"chaos_" + tag, "value-" + tag}
			j.scriptOut = fmt.Sprintf(`{"tag":%q}`, tag)
			// A helper call that fails (the backend failing or stalling past
			// the call's budget, the relay cut by a restart) fails the job, as
			// a careful script would: the script is told, and the invariant is
			// that a completed job's calls all took effect.
			s := fmt.Sprintf("cronium_setVariable %s %s || exit 7\ncronium_output '%s' || exit 8\necho \"%s set\"\n",
				j.variable[0], j.variable[1], j.scriptOut, tag)
			j.req, j.stdout = embedded.SubmitRequest{Script: bash(s)}, tag+" set\n"
		case secrets:
			j.secret = "tok-" + randomHex(12)
			s := "echo \"token=$API_TOKEN\"\necho \"" + tag + " done\"\n"
			j.req = embedded.SubmitRequest{Script: bash(s), Environment: map[string]string{"API_TOKEN": j.secret}}
			j.stdout = "token=[MASKED]\n" + tag + " done\n"
		}
		if k == sshShort || k == sshLong {
			// Each launch leaves a mark: a job must never run twice.
			j.req.Script.Content = "echo run >> /tmp/chaos-runs-" + tag + "\n" + j.req.Script.Content
			j.req.Servers = []embedded.ServerSpec{{Name: "chaos-sshd", Host: ssh.Host, Port: ssh.Port,
				Username: ssh.User, Password: secret.Value(ssh.Password)}}
		}
		j.req.Name = tag
		j.req.Timeout = "3m"
		jobs = append(jobs, j)
	}
	return jobs
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
