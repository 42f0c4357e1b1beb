package daemon

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/internal/testenv"
)

// The status page in a real browser (Debian's chromium, headless): it
// shows a running job with its output, and its "crash" button restarts
// the job's actor, which the page and /metrics both show.
func TestStatusPageCrashButton(t *testing.T) {
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		testenv.Unavailable(t, "chromium (Debian package chromium) not on PATH")
		return
	}
	s, f := observedStack(t, func(c *config.Config) { c.Jobs.ShutdownGrace = 200 * time.Millisecond })
	id := s.submit(bashJob("x", map[string]string{"FAKE_LINES": "3", "FAKE_SLEEP": "1h"}))
	testenv.Eventually(t, testenv.Patience, "the job to run", func() bool { return f.Starts() == 1 })

	alloc, cancel := chromedp.NewExecAllocator(t.Context(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true))...)
	defer cancel()
	browserCtx, cancel := chromedp.NewContext(alloc)
	defer cancel()

	start := time.Now()
	// The first call starts the browser: no timeout on it, or the timeout
	// would end the browser too.
	if err := chromedp.Do(browserCtx, chromedp.Navigate("http://"+s.daemon.AdminAddr()+"/")); err != nil {
		t.Fatalf("opening the status page: %v", err)
	}
	ctx, cancel := context.WithTimeout(browserCtx, testenv.Patience)
	defer cancel()

	job := `div.job[data-job="` + id + `"]`
	row := `tr[data-pid="` + s.jobPID(id).ID + `"]`
	restartsJS := `(document.querySelector('` + row + ` td.restarts') || {}).innerText`
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(job)),
		// The job's live tail arrives with the page's own refresh.
		void(chromedp.Poll[bool](`document.querySelector('`+job+` pre.tail').innerText.includes("line 3")`)),
		void(chromedp.Poll[bool](restartsJS+` === "0"`)),
	)
	if err != nil {
		t.Fatalf("the page does not show the running job: %v", err)
	}
	t.Logf("status page showed the running job after %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(row+` button[data-action="crash"]`)),
		void(chromedp.Poll[bool](restartsJS+` === "1"`, chromedp.WithPollingTimeout(testenv.Patience))),
	)
	if err != nil {
		t.Fatalf("crash button: %v", err)
	}
	flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#flash`)))
	if err != nil || !strings.Contains(flash, "restarted") {
		t.Errorf("flash message %q (%v)", flash, err)
	}
	t.Logf("restart shown on the page %s after the click", time.Since(start).Round(time.Millisecond))
	if got := testenv.MetricValue(s.scrape(t), "cronium_orchestrator_actor_restarts_total", "kind", "job"); got != 1 {
		t.Errorf("actor_restarts_total{kind=job} = %v after the crash, want 1", got)
	}
}

// void drops an action's value, for chromedp.Do.
func void[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}
