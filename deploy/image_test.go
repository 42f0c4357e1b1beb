package deploy_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/embedded"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
)

// `make image` builds, without a registry, an image that runs `version`
// and, given the Docker socket and its group, runs jobs as a non-root user,
// answers its HEALTHCHECK and exits 0 on docker stop.
func TestImage(t *testing.T) {
	testenv.Docker(t)
	img := orchestratorImage(t)

	if out := docker(t, "run", "--rm", img, "version"); out != "cronium-orchestrator v9.9.9-test (commit c0ffee1)" {
		t.Errorf("version: %q", out)
	}
	var cfg struct {
		User        string
		Labels      map[string]string
		Healthcheck struct{ Test []string }
	}
	if err := json.Unmarshal([]byte(docker(t, "image", "inspect", "--format", "{{json .Config}}", img)), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", cfg.User)
	}
	for k, v := range map[string]string{"org.opencontainers.image.version": "v9.9.9-test",
		"org.opencontainers.image.revision": "c0ffee1", "org.opencontainers.image.source": testSource} {
		if cfg.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, cfg.Labels[k], v)
		}
	}
	if strings.Join(cfg.Healthcheck.Test, " ") != "CMD /usr/local/bin/cronium-orchestrator health" {
		t.Errorf("healthcheck %q", cfg.Healthcheck.Test)
	}

	store, url, token := daemontest.Backend(t) // on the host's loopback: the container shares its network
	name := randomName("cronium-image-test-")
	docker(t, "run", "-d", "--name", name, "--network", "host",
		"-v", "/var/run/docker.sock:/var/run/docker.sock", "--group-add", socketGroup(t),
		"-e", "CRONIUM_API_URL="+url, "-e", "CRONIUM_API_TOKEN="+token.Reveal(), "-e", "CRONIUM_ORCHESTRATOR_ID="+name,
		"-e", "CRONIUM_HTTP_LISTEN="+testenv.FreeAddr(t), "-e", "CRONIUM_ADMIN_LISTEN=",
		"-e", "CRONIUM_DOCKER_PULL_POLICY=never", "-e", "CRONIUM_DOCKER_NETWORK_MODE=none",
		"-e", "CRONIUM_JOBS_POLL_INTERVAL=200ms", "--health-interval", "1s", img, "run")
	t.Cleanup(func() { docker(t, "rm", "-f", "-v", name) })

	id, err := store.Submit(t.Context(), embedded.SubmitRequest{
		Script: &backend.Script{Type: "BASH", Content: "echo \"hello from $(id -u)\"\n"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeJobContainers(id) })
	testenv.Eventually(t, testenv.Patience, "the job to complete", func() bool {
		v, err := store.Job(t.Context(), id)
		return err == nil && v.TerminalUpdates > 0
	})
	v, _ := store.Job(t.Context(), id)
	if v.Status != "completed" || v.Output.Stdout != "hello from 65534\n" {
		t.Fatalf("job: %s %q %q\nlogs:\n%s", v.Status, v.Output.Stdout, v.Result.Error, logsOf(name))
	}
	testenv.Eventually(t, testenv.Patience, "the HEALTHCHECK to pass", func() bool {
		return docker(t, "inspect", "--format", "{{.State.Health.Status}}", name) == "healthy"
	})
	docker(t, "stop", "-t", "60", name)
	if code := docker(t, "inspect", "--format", "{{.State.ExitCode}}", name); code != "0" {
		t.Fatalf("exit code %s after docker stop\nlogs:\n%s", code, logsOf(name))
	}
	if logs := logsOf(name); !strings.Contains(logs, `"msg":"orchestrator stopped"`) {
		t.Fatalf("no clean stop in the logs:\n%s", logs)
	}
}
