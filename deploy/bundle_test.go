package deploy_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/secret"
)

// The stand-in for Cronium's backend image: a Debian root fs with tini
// and s6 (scripts/build-images.sh), whose "backend" is the embedded one.
const backendStandIn = "cronium/debian-base:2"

// The bundle under tini and s6: both processes log to the container's
// output; a job runs in a sibling container; the orchestrator killed with
// -9 is restarted by s6 and re-attaches to the job, which completes once
// with its full output; docker stop drains it and it exits 0.
func TestBundle(t *testing.T) {
	cli := testenv.Docker(t)
	img := orchestratorImage(t)
	bundle := "cronium/bundle:deploy-test"
	docker(t, "build", "-q", "-t", bundle, "--build-arg", "BACKEND_IMAGE="+backendStandIn,
		"--build-arg", "ORCHESTRATOR_IMAGE="+img, "bundle")

	name := randomName("cronium-bundle-test-")
	token := secret.Value(randomName("token-"))
	docker(t, "run", "-d", "--name", name, "-p", "127.0.0.1::5001",
		"-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", name+":/var/lib/cronium-orchestrator",
		"-e", "INTERNAL_API_KEY="+token.Reveal(), "-e", "CRONIUM_BACKEND_DIR=/",
		"-e", "CRONIUM_BACKEND_COMMAND=cronium-orchestrator serve --listen 0.0.0.0:5001 --data /var/lib/cronium-backend",
		"-e", "CRONIUM_DOCKER_PULL_POLICY=never", "-e", "CRONIUM_DOCKER_NETWORK_MODE=none",
		"-e", "CRONIUM_JOBS_POLL_INTERVAL=200ms", "-e", "CRONIUM_JOBS_SHUTDOWN_GRACE=3s", bundle)
	t.Cleanup(func() {
		docker(t, "rm", "-f", name)
		docker(t, "volume", "rm", "-f", name)
	})
	port := docker(t, "port", name, "5001/tcp")
	_, p, _ := net.SplitHostPort(strings.Split(port, "\n")[0])
	client := embedded.NewPublicClient(fmt.Sprintf("http://127.0.0.1:%s", p), token)

	starts := testenv.WatchStarts(t, cli, "cronium.job-id")
	var id string
	testenv.Eventually(t, testenv.Patience, "the bundle's backend to take a job", func() bool {
		var err error
		id, err = client.Submit(t.Context(), embedded.SubmitRequest{Script: &backend.Script{Type: "BASH",
			Content: "for i in $(seq 1 300); do echo line $i; sleep 0.02; done\n"}})
		return err == nil
	})
	t.Cleanup(func() { removeJobContainers(id) })
	job := func() embedded.JobView {
		v, err := client.Job(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	testenv.Eventually(t, testenv.Patience, "the job to run in a sibling container", func() bool {
		return strings.Contains(job().Output.Stdout, "line 1\n")
	})
	docker(t, "exec", name, "pkill", "-9", "-f", "cronium-orchestrator run")
	testenv.Eventually(t, testenv.Patience, "s6 to restart the orchestrator", func() bool {
		logs := logsOf(name)
		return strings.Contains(logs, "cronium-orchestrator exited: code 256 signal 9") &&
			strings.Count(logs, `"msg":"orchestrator started"`) == 2
	})
	testenv.Eventually(t, testenv.Patience, "the job to complete", func() bool { return job().TerminalUpdates > 0 })
	var want strings.Builder
	for i := 1; i <= 300; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	v := job()
	if v.Status != "completed" || v.Output.Stdout != want.String() || v.TerminalUpdates != 1 {
		t.Fatalf("job %s, %d terminal updates, output complete: %v\n%q\nlogs:\n%s",
			v.Status, v.TerminalUpdates, v.Output.Stdout == want.String(), v.Output.Stdout, logsOf(name))
	}
	if n := starts.Count(id); n != 1 {
		t.Fatalf("the job's container started %d times, want once", n)
	}
	logs := logsOf(name)
	for _, w := range []string{"Cronium embedded backend", `"msg":"jobs of the earlier process found in the journal"`} {
		if !strings.Contains(logs, w) {
			t.Errorf("the container's output lacks %q", w)
		}
	}

	// docker stop with a job running: drained for jobs.shutdown_grace,
	// the job detached (left for the next start), exit 0.
	long, err := client.Submit(t.Context(), embedded.SubmitRequest{Script: &backend.Script{Type: "BASH",
		Content: "echo started; sleep 300\n"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeJobContainers(long) })
	testenv.Eventually(t, testenv.Patience, "the long job to run", func() bool {
		v, err := client.Job(t.Context(), long)
		return err == nil && strings.Contains(v.Output.Stdout, "started")
	})
	docker(t, "stop", "-t", "120", name)
	logs = logsOf(name)
	if !strings.Contains(logs, "cronium-orchestrator exited: code 0 signal 0") || !strings.Contains(logs, `"msg":"orchestrator stopped"`) {
		t.Fatalf("the orchestrator did not drain and exit 0:\n%s", logs)
	}
	if code := docker(t, "inspect", "--format", "{{.State.ExitCode}}", name); code != "0" {
		t.Fatalf("the bundle exited %s", code)
	}
}
