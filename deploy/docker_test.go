package deploy_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// The image every test here runs, built once per test binary by the same
// script as `make image`.
const testImage = "cronium/orchestrator:deploy-test"

// testSource is the image's source label as the test builds it.
const testSource = "deploy-test-source"

var (
	buildOnce sync.Once
	buildErr  error
	buildOut  string
)

func orchestratorImage(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		cmd := exec.Command("../scripts/build-image.sh")
		cmd.Env = append(os.Environ(), "IMAGE="+testImage, "VERSION=v9.9.9-test", "COMMIT=c0ffee1", "SOURCE="+testSource)
		out, err := cmd.CombinedOutput()
		buildErr, buildOut = err, string(out)
	})
	if buildErr != nil {
		t.Fatalf("make image: %v\n%s", buildErr, buildOut)
	}
	return testImage
}

// docker runs the docker CLI and returns its trimmed stdout.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg += ": " + string(ee.Stderr)
		}
		t.Fatalf("docker %s: %s", strings.Join(args, " "), msg)
	}
	return strings.TrimSpace(string(out))
}

// logsOf is a container's stdout and stderr so far.
func logsOf(name string) string {
	out, _ := exec.Command("docker", "logs", name).CombinedOutput()
	return string(out)
}

func randomName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// socketGroup is the group that owns the Docker socket, which a non-root
// orchestrator joins to use it.
func socketGroup(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("stat", "-c", "%g", "/var/run/docker.sock").Output()
	if err != nil {
		t.Skipf("no Docker socket at /var/run/docker.sock: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// removeJobContainers removes what a job left (a detached run).
func removeJobContainers(id string) {
	exec.Command("sh", "-c", "docker rm -f $(docker ps -aq --filter label=cronium.job-id="+id+") 2>/dev/null").Run()
}
