package chaos_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/journal"
)

// checkJobs checks every job ended once, honestly, and that each one that
// completed normally printed exactly what it should; it returns the count
// of each outcome.
func checkJobs(t *testing.T, store *embedded.Store, jobs []*plannedJob, killed map[string]bool,
	starts *testenv.Starts, sshd *testenv.SSHD, v *violations) map[string]int {
	outcomes := map[string]int{}
	for _, j := range jobs {
		// A second container start is not a second run: a start whose
		// answer was lost (the job actor detached during it) is discarded
		// before the script is sent to it, then the container is made
		// afresh. Counted for the summary; runs are counted over SSH.
		if n := starts.Count(j.id); n > 1 {
			outcomes["  (container starts beyond the first, script not sent)"] += n - 1
		}
		if j.kind == sshShort || j.kind == sshLong {
			out, err := sshd.Exec("cat /tmp/chaos-runs-" + j.tag + " 2>/dev/null | wc -l")
			if runs := strings.TrimSpace(out); err == nil && runs != "0" && runs != "1" {
				v.add(j.tag, "launched %s times on the server", runs)
			}
		}
		jv, err := store.Job(t.Context(), j.id)
		if err != nil {
			v.add(j.tag, "not readable: %v", err)
			continue
		}
		if jv.TerminalUpdates != 1 {
			v.add(j.tag, "%d terminal updates, want exactly 1 (status %s); %s's calls: %s",
				jv.TerminalUpdates, jv.Status, j.id, eventTrail(t, store, j.id))
		}
		switch jv.Status {
		case "completed":
			outcomes[string(j.kind)+": completed"]++
			if jv.Output.Stdout != j.stdout {
				v.add(j.tag+" "+j.id, "%s completed with other output: %d bytes (sha256 %s), want %d bytes (sha256 %s)",
					j.kind, len(jv.Output.Stdout), digest(jv.Output.Stdout), len(j.stdout), digest(j.stdout))
			}
			if j.scriptOut != "" && !sameJSON(string(jv.Result.ScriptOutput), j.scriptOut) {
				v.add(j.tag, "script output %s, want %s", jv.Result.ScriptOutput, j.scriptOut)
			}
			if j.variable[0] != "" {
				if got, err := store.Variable(t.Context(), embedded.DefaultUserID, j.variable[0]); err != nil || got.Value != j.variable[1] {
					v.add(j.tag, "variable %s = %q (%v), want %q; the job's stderr: %q", j.variable[0], got.Value, err, j.variable[1],
						firstLine(jv.Output.Stderr, 400))
				}
			}
		case "failed", "cancelled":
			if strings.TrimSpace(jv.Result.Error) == "" {
				v.add(j.tag, "%s without a reason", jv.Status)
			}
			why := "container killed by the driver"
			if !killed[j.id] {
				why = firstLine(jv.Result.Error, 60)
				outcomes["  detail: "+j.tag+": "+firstLine(jv.Result.Error, 400)]++
			}
			outcomes[string(j.kind)+": "+jv.Status+": "+why]++
		default:
			v.add(j.tag, "ended in status %q", jv.Status)
		}
	}
	return outcomes
}

// eventTrail is the job's calls as the backend saw them, for a violation
// that only its order explains.
func eventTrail(t *testing.T, store *embedded.Store, jobID string) string {
	events, err := store.Events(t.Context(), jobID)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "\n    %s %s", e.At.Format("15:04:05.000"), e.Kind)
		if e.Terminal {
			b.WriteString(" (terminal)")
		}
		if e.Detail != "" {
			fmt.Fprintf(&b, ": %s", firstLine(e.Detail, 120))
		}
	}
	return b.String()
}

func firstLine(s string, max int) string {
	s = strings.TrimPrefix(strings.TrimSpace(strings.SplitN(strings.TrimSpace(s), "\n", 2)[0]), "[cronium] ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// checkNothingLeft: no job container, no remote process or spool, no
// journal entry outlives the jobs.
func checkNothingLeft(t *testing.T, id string, sshd *testenv.SSHD, dir string, v *violations) {
	var left string
	if !waitFor(func() bool {
		out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=cronium.orchestrator-id="+id).Output()
		left = strings.TrimSpace(string(out))
		return err == nil && left == ""
	}, 2*time.Minute) {
		v.add("leftovers", "job containers still there: %s", strings.Join(strings.Fields(left), " "))
	}
	if sshd != nil && !waitFor(func() bool {
		out, err := sshd.Exec(`ls -d /tmp/cronium-* /tmp/.cronium-* 2>/dev/null; ps -eo user:32,args | awk -v u="` + sshd.User +
			`" '$1 == u && $2 !~ /^sshd:/'`)
		left = strings.TrimSpace(out)
		return err == nil && left == ""
	}, 2*time.Minute) {
		v.add("leftovers", "on the SSH server: %s", left)
	}
	if !waitFor(func() bool {
		ids, err := journal.Pending(dir)
		left = strings.Join(ids, " ")
		return err == nil && len(ids) == 0
	}, time.Minute) {
		v.add("leftovers", "journal entries: %s", left)
	}
}

// checkSecrets greps every artefact of the run for every secret it used.
func checkSecrets(t *testing.T, orch *orchestrator, store *embedded.Store, jobs []*plannedJob, secrets []string, v *violations) {
	artefacts := map[string]string{
		"the orchestrator's logs": orch.logs.String(),
		"/metrics":                get(orch.health + "/metrics"),
		"the status page":         get(orch.admin + "/"),
		"the admin jobs API":      get(orch.admin + "/api/jobs?lines=200"),
		"the admin actors API":    get(orch.admin + "/api/actors"),
	}
	var outputs strings.Builder
	for _, j := range jobs {
		if j.secret != "" {
			secrets = append(secrets, j.secret)
		}
		if jv, err := store.Job(t.Context(), j.id); err == nil {
			outputs.WriteString(jv.Output.Stdout + jv.Output.Stderr + jv.Result.Error)
		}
	}
	artefacts["job output and error texts"] = outputs.String()
	for name, text := range artefacts {
		if text == "" && name != "the admin jobs API" {
			v.add("secrets", "%s could not be read", name)
		}
		for _, s := range secrets {
			if strings.Contains(text, s) {
				v.add("secrets", "a secret (%d chars) appears in %s", len(s), name)
			}
		}
	}
}
