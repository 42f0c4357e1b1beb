package daemon

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
)

// TestBadInputs feeds the orchestrator one bad input per case and checks
// that it ends in a clear error and a live orchestrator.
//
// A bad job must end at the backend failed (exit code 125: it could not
// run) with a readable reason in its error, or run as the documented rule
// says (a zero timeout is the default one; a timeout or resources beyond
// the maxima are clamped); a following good job then completes and
// /healthz answers. A misbehaving backend (cases 15-19) has no job to
// fail: the orchestrator must say what is wrong (a WARN or ERROR record,
// /readyz naming the backend), back off instead of hammering it, and run
// every job exactly once when the backend recovers.
//
// Job cases share one daemon with the real executors (Docker, SSH, HTTP);
// each backend fault gets a daemon of its own, with the scripted fake
// executor. Every case is set up (its jobs submitted, its faults set)
// before any is checked, so that all of them run at once whatever
// -parallel allows.
func TestBadInputs(t *testing.T) {
	shared := startSharedBadEnv(t)
	for _, c := range badInputs {
		t.Run(c.name, func(t *testing.T) {
			if c.docker && shared.noDocker != nil {
				testenv.Unavailable(t, "%v", shared.noDocker)
			}
			check := c.setup(t, shared) // before t.Parallel: every case is under way before any is checked
			t.Parallel()
			check(t)
		})
	}
}

type badInput struct {
	name   string
	docker bool // runs a container
	// setup submits the case's jobs and sets its faults (on the shared
	// env, or on an env of its own) and returns the case's check.
	setup func(t *testing.T, shared *badEnv) (check func(t *testing.T))
}

var badInputs = []badInput{
	{name: "01 unknown script type", setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		id := e.submit(t, "ruby", script("BASH", "echo hi"), func(j map[string]any) {
			execOf(j)["script"].(map[string]any)["type"] = "RUBY"
		})
		return e.failsClearly(id, false, `unknown script language "RUBY"`)
	}},
	{name: "02 empty script", setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		id := e.submit(t, "empty", script("BASH", " \n\t\n"), nil)
		return e.failsClearly(id, false, "script is empty")
	}},
	{name: "03 negative timeout is refused", setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		id := e.submit(t, "negative timeout", script("BASH", "echo hi"), setTimeout("-5000000000"))
		return e.failsClearly(id, false, "timeout", "negative")
	}},
	{name: "04 zero timeout means jobs.default_timeout", docker: true, setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		id := e.submit(t, "zero timeout", script("BASH", "echo ran"), setTimeout("0"))
		return e.runsWithTimeout(id, e.cfg.Jobs.DefaultTimeout)
	}},
	{name: "05 absurd timeout (100 years) is clamped", docker: true, setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		id := e.submit(t, "100 years", script("BASH", "echo ran"), setTimeout(fmt.Sprint(int64(100*365*24*time.Hour))))
		return e.runsWithTimeout(id, jobspec.MaxTimeout)
	}},
	{name: "05b timeout beyond int64 (1e30 ns) is clamped", docker: true, setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		id := e.submit(t, "1e30 ns", script("BASH", "echo ran"), setTimeout("1e30"))
		return e.runsWithTimeout(id, jobspec.MaxTimeout)
	}},
	{name: "06 resources above the maxima are clamped", docker: true, setup: resourcesAboveMaxima},
	{name: "07 malformed private key", setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		srv := startSilentServer(t)
		const body = "bm90IGEga2V5IGF0IGFsbA"
		key := "-----BEGIN OPENSSH PRIVATE KEY-----\n" + body + "\n-----END OPENSSH PRIVATE KEY-----\n"
		id := e.submit(t, "malformed key", sshJobTo(srv.addr, key), nil)
		return e.sshFailsBeforeDialing(id, srv, body, "private key cannot be parsed")
	}},
	{name: "08 encrypted private key without passphrase", setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		srv := startSilentServer(t)
		key := newKey(t, "correct horse")
		id := e.submit(t, "encrypted key", sshJobTo(srv.addr, key), nil)
		return e.sshFailsBeforeDialing(id, srv, strings.Split(key, "\n")[1], "encrypted", "no passphrase")
	}},
	{name: "09 server without host", setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		srv := startSilentServer(t)
		id := e.submit(t, "no host", sshJobTo(srv.addr, newKey(t, "")), func(j map[string]any) {
			execOf(j)["target"].(map[string]any)["serverDetails"].(map[string]any)["host"] = ""
		})
		return e.sshFailsBeforeDialing(id, srv, "", `server "web-01" has no host`)
	}},
	{name: "10 NUL in an environment variable name", docker: true, setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		id := e.submit(t, "NUL name", script("BASH", "echo hi", withEnv("BAD\x00NAME", "v")), nil)
		return e.failsClearly(id, true, "environment variable", `BAD\x00NAME`)
	}},
	{name: "10b NUL in an environment variable value", docker: true, setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		id := e.submit(t, "NUL value", script("BASH", "echo hi", withEnv("API_KEY", "s3cr3t\x00tail")), nil)
		return e.failsClearly(id, true, "environment variable API_KEY contains a NUL byte", "!s3cr3t")
	}},
	{name: "11 10 MB script", docker: true, setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		id := e.submit(t, "10 MB", script("BASH", "#"+strings.Repeat("x", 10<<20)+"\necho done\n"), nil)
		return func(t *testing.T) {
			e.expectOnce(id)
			if v := e.wait(t, id); v.Status != "completed" || v.Output.Stdout != "done\n" {
				t.Fatalf("%s, stdout %q, error %q", v.Status, v.Output.Stdout, v.Result.Error)
			}
			e.alive(t, "a 10 MB script", true)
		}
	}},
	{name: "12 binary output arrives as valid text", docker: true, setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		id := e.submit(t, "binary", script("BASH", `head -c 200000 /dev/urandom; printf '\000\377\376\300 x\n'; echo end`), nil)
		return func(t *testing.T) {
			e.expectOnce(id)
			v := e.wait(t, id)
			if v.Status != "completed" || len(v.Executions) != 1 {
				t.Fatalf("%s, %d executions, error %q", v.Status, len(v.Executions), v.Result.Error)
			}
			for what, out := range map[string]string{"job stdout": v.Output.Stdout, "execution output": v.Executions[0].Output} {
				if !utf8.ValidString(out) || strings.ContainsRune(out, 0) || !strings.HasSuffix(out, "\nend\n") || len(out) < 200000 {
					t.Errorf("%s: %d bytes, valid UTF-8 %v, NUL %v, ends %q", what, len(out), utf8.ValidString(out),
						strings.ContainsRune(out, 0), out[max(len(out)-20, 0):])
				}
			}
			e.alive(t, "binary output", true)
		}
	}},
	{name: "13 job id that is a number", setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		id := e.submit(t, "numeric id", e.httpJob("/numeric-id"), func(j map[string]any) { j["id"] = json.Number("424242") })
		return func(t *testing.T) {
			e.expectOnce(id)
			v := e.wait(t, id)
			if v.Status != "failed" || v.Result.ExitCode == nil || *v.Result.ExitCode != 125 ||
				!strings.Contains(v.Result.Error, "could not read the job") || !strings.Contains(v.Result.Error, "id") {
				t.Fatalf("%s, exit %v, error %q", v.Status, v.Result.ExitCode, v.Result.Error)
			}
			if n := e.hitsOf("/numeric-id"); n != 0 {
				t.Fatalf("the job ran %d times", n)
			}
			e.alive(t, "a numeric job id", false)
		}
	}},
	{name: "13b job id that is an object", setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		// The job cannot be named to the backend: it stays claimed under
		// our id until the orphan check releases it; claimed again (now
		// well formed), it runs once.
		id := e.submit(t, "object id", e.httpJob("/object-id"), func(j map[string]any) {
			j["id"] = map[string]any{"uuid": "0b6f"}
		})
		return func(t *testing.T) {
			e.expectOnce(id)
			e.waitLogged(t, slog.LevelError, "could not be decoded", "without a readable id")
			if v := e.wait(t, id); v.Status != "completed" || e.hitsOf("/object-id") != 1 {
				t.Fatalf("%s, ran %d times, error %q", v.Status, e.hitsOf("/object-id"), v.Result.Error)
			}
			e.assertEvents(t, id, embedded.EventReleased, 1)
			e.alive(t, "an object job id", false)
		}
	}},
	{name: "14 duplicate ids in one poll answer", setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		e.b.set(func(f *faultyBackend) { f.duplicate["twice"] = true })
		id := e.submit(t, "twice", e.httpJob("/twice"), nil)
		return func(t *testing.T) {
			e.expectOnce(id)
			v := e.wait(t, id)
			if v.Status != "completed" || len(v.Executions) != 1 || e.hitsOf("/twice") != 1 {
				t.Fatalf("%s, %d executions, ran %d times", v.Status, len(v.Executions), e.hitsOf("/twice"))
			}
			e.waitLogged(t, slog.LevelWarn, "claimed twice", id)
			e.alive(t, "a duplicate id", false)
		}
	}},
	{name: "15 HTML answer to the poll", setup: func(t *testing.T, _ *badEnv) func(*testing.T) {
		return backendFault(t, "15", htmlPoll, false, false, "text/html, not JSON")
	}},
	{name: "16 truncated JSON answer to the poll", setup: func(t *testing.T, _ *badEnv) func(*testing.T) {
		return backendFault(t, "16", nil, false, false, "unexpected end of JSON input")
	}},
	{name: "17 500 on every call", setup: func(t *testing.T, _ *badEnv) func(*testing.T) {
		return backendFault(t, "17", status(http.StatusInternalServerError), false, true, "500 Internal Server Error")
	}},
	{name: "18 401 on every call (token rotated)", setup: func(t *testing.T, _ *badEnv) func(*testing.T) {
		return backendFault(t, "18", status(http.StatusUnauthorized), true, true, "401 Unauthorized")
	}},
	{name: "19 10,000 jobs for batchSize 2", setup: giantBatch},
	{name: "20 execution create answers 500 forever", setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		e.b.set(func(f *faultyBackend) { f.createFails["create fails"] = true })
		id := e.submit(t, "create fails", e.httpJob("/create-fails"), nil)
		check := e.failsClearly(id, false, "create execution", "500 Internal Server Error")
		return func(t *testing.T) {
			check(t)
			if n := e.hitsOf("/create-fails"); n != 0 {
				t.Fatalf("the job ran %d times without an execution record", n)
			}
		}
	}},
	{name: "21 SSH server that accepts and never answers", setup: func(t *testing.T, e *badEnv) func(*testing.T) {
		srv := startSilentServer(t)
		id := e.submit(t, "silent server", sshJobTo(srv.addr, newKey(t, "")), nil)
		check := e.failsClearly(id, false, "127.0.0.1:", "handshake", "timed out")
		return func(t *testing.T) {
			check(t)
			if srv.accepted() == 0 {
				t.Fatal("the server saw no connection")
			}
		}
	}},
}

// startSharedBadEnv is the daemon the job cases share: real executors,
// Docker when it is here, a short handshake timeout (case 21), a short
// retry budget (case 20), frequent orphan checks (case 13b), room for
// every case's jobs at once.
func startSharedBadEnv(t *testing.T) *badEnv {
	noDocker := dockerReady()
	known := emptyKnownHosts(t)
	e := startBadEnv(t, nil, nil, func(c *config.Config) {
		c.Docker.Enabled = noDocker == nil
		c.Docker.PullPolicy = config.PullNever
		c.Docker.NetworkMode = "none"
		c.SSH.KnownHosts = known
		c.SSH.HandshakeTimeout = time.Second
		c.API.RetryMaxElapsed = time.Second
		c.Jobs.OrphanCheckInterval = time.Second
		c.Jobs.MaxConcurrent = 30 // no case waits for another's slot
		c.Docker.MaxCPUs = 1      // Docker refuses more than the machine has (case 06)
	})
	e.noDocker = noDocker
	return e
}

func setTimeout(ns string) func(map[string]any) {
	return func(j map[string]any) { execOf(j)["timeout"] = json.Number(ns) }
}

func withEnv(k, v string) func(*embedded.SubmitRequest) {
	return func(r *embedded.SubmitRequest) { r.Environment = map[string]string{k: v} }
}

// failsClearly is the check of a job that must end failed as "could not
// run" with every fragment in its error ("!x": x must not be there, a
// secret), then a good job (a container job when container is set).
func (e *badEnv) failsClearly(id string, container bool, fragments ...string) func(*testing.T) {
	return func(t *testing.T) {
		e.expectOnce(id)
		v := e.wait(t, id)
		if v.Status != "failed" || v.Result.ExitCode == nil || *v.Result.ExitCode != 125 {
			t.Fatalf("%s, exit %v, want failed 125; error %q", v.Status, v.Result.ExitCode, v.Result.Error)
		}
		t.Logf("the backend shows: %q", v.Result.Error)
		for _, f := range fragments {
			if absent, ok := strings.CutPrefix(f, "!"); ok && strings.Contains(v.Result.Error, absent) ||
				!ok && !strings.Contains(v.Result.Error, f) {
				t.Fatalf("error %q: want %q", v.Result.Error, f)
			}
		}
		if !strings.Contains(v.Output.Stderr, "[cronium] ") {
			t.Fatalf("stderr %q: the reason is not marked [cronium]", v.Output.Stderr)
		}
		e.alive(t, "a failed job", container)
	}
}

// sshFailsBeforeDialing: the job fails with fragments before any
// connection to srv; secret (key material) is not in the error.
func (e *badEnv) sshFailsBeforeDialing(id string, srv *silentServer, secret string, fragments ...string) func(*testing.T) {
	if secret != "" {
		fragments = append(fragments, "!"+secret)
	}
	check := e.failsClearly(id, false, fragments...)
	return func(t *testing.T) {
		check(t)
		if n := srv.accepted(); n != 0 {
			t.Fatalf("the server saw %d connection(s): the error should come before dialing", n)
		}
	}
}

// runsWithTimeout: the job completes, and its executor was given timeout.
func (e *badEnv) runsWithTimeout(id string, timeout time.Duration) func(*testing.T) {
	return func(t *testing.T) {
		e.expectOnce(id)
		if v := e.wait(t, id); v.Status != "completed" || v.Output.Stdout != "ran\n" {
			t.Fatalf("%s, stdout %q, error %q", v.Status, v.Output.Stdout, v.Result.Error)
		}
		rec := e.waitLogged(t, slog.LevelInfo, `"msg":"executing"`, id)
		spec, _ := rec["spec"].(map[string]any)
		if got, _ := spec["timeout"].(float64); time.Duration(got) != timeout {
			t.Fatalf("the executor was given a timeout of %v, want %v", time.Duration(got), timeout)
		}
		if timeout == jobspec.MaxTimeout {
			e.waitLogged(t, slog.LevelWarn, "clamped", id)
		}
		e.alive(t, "a job with an odd timeout", true)
	}
}

func (e *badEnv) assertEvents(t *testing.T, id, kind string, want int) {
	t.Helper()
	events, err := e.b.store.Events(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range events {
		if ev.Kind == kind {
			n++
		}
	}
	if n != want {
		t.Fatalf("job %s: %d %s events, want %d: %+v", id, n, kind, want, events)
	}
}

// resourcesAboveMaxima: a job asking for far more than the maxima runs with
// the maxima, as the container's cgroups and its /work tmpfs show.
func resourcesAboveMaxima(t *testing.T, e *badEnv) func(*testing.T) {
	const show = `m=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
p=$(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max)
if [ -r /sys/fs/cgroup/cpu.max ]; then c=$(cut -d' ' -f1 /sys/fs/cgroup/cpu.max); else c=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us); fi
echo "memory $m pids $p cpu $c"; df -k /work | tail -1 | awk '{print "work " $2}'`
	id := e.submit(t, "huge resources", script("BASH", show, func(r *embedded.SubmitRequest) {
		r.Resources = &backend.Resources{CPULimit: 64, MemoryLimit: 1 << 40, DiskLimit: 1 << 40, PidsLimit: 1 << 30}
	}), nil)
	d := e.cfg.Docker
	want := fmt.Sprintf("memory %d pids %d cpu %d\nwork %d\n", d.MaxMemory.Bytes(), d.MaxPids,
		int64(d.MaxCPUs*100000), d.TmpfsSize.Bytes()/1024)
	return func(t *testing.T) {
		e.expectOnce(id)
		if v := e.wait(t, id); v.Status != "completed" || v.Output.Stdout != want {
			t.Fatalf("%s, stdout %q, want %q; error %q", v.Status, v.Output.Stdout, want, v.Result.Error)
		}
		e.waitLogged(t, slog.LevelWarn, "clamped", id)
		e.alive(t, "huge resources", true)
	}
}
