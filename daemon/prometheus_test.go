package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cronium/orchestrator/internal/testenv"
)

// A real Prometheus server (Debian's prometheus package) scrapes the
// orchestrator every second; its query API must see the target up and
// the jobs the orchestrator finished.
func TestPrometheusScrapesTheOrchestrator(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		testenv.Unavailable(t, "prometheus server (Debian package prometheus): %v", err)
		return
	}
	s, _ := observedStack(t)
	id := s.submit(bashJob("x", map[string]string{"FAKE_LINES": "3"}))
	s.wait(id, testenv.Patience)

	api := startPrometheus(t, bin, s.daemon.HTTPAddr())
	queries := map[string]func(float64) bool{
		`up{job="cronium-orchestrator"}`:                                   func(v float64) bool { return v == 1 },
		`sum(cronium_orchestrator_jobs_finished_total{outcome="success"})`: func(v float64) bool { return v >= 1 },
	}
	start := time.Now()
	for q, ok := range queries {
		var last string
		testenv.Eventually(t, testenv.Patience, "Prometheus to answer "+q, func() bool {
			v, raw, found := queryProm(api, q)
			last = raw
			return found && ok(v)
		})
		t.Logf("%s ok after %s (%s)", q, time.Since(start).Round(time.Millisecond), last)
	}
}

// startPrometheus runs a Prometheus server scraping target at 1s and
// returns its API base URL; it is stopped when the test ends.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: cronium-orchestrator
    static_configs:
      - targets: [%q]
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := testenv.FreeAddr(t) // a race with another process for it is unlikely
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	var logs testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})
	api := "http://" + listen
	testenv.Eventually(t, testenv.Patience, "Prometheus to be ready", func() bool {
		resp, err := http.Get(api + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return api
}

// queryProm runs an instant query and returns the first sample's value.
func queryProm(api, q string) (float64, string, bool) {
	resp, err := http.Get(api + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err.Error(), false
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Data.Result) == 0 {
		return 0, fmt.Sprintf("status %s, no result", body.Status), false
	}
	raw, _ := body.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(raw, 64)
	return v, raw, err == nil
}
