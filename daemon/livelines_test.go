package daemon

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
	"github.com/cronium/orchestrator/config"
	"github.com/cronium/orchestrator/executors"
	"github.com/cronium/orchestrator/internal/daemontest"
	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/jobspec"
	"github.com/cronium/orchestrator/livelines"
)

// liveLine is one POST /broadcast/log-line a liveServer took, with when.
type liveLine struct {
	LogID  json.Number `json:"logId"`
	Line   string      `json:"line"`
	Stream string      `json:"stream"`
	at     time.Time
}

// liveServer stands in for Cronium's Socket.IO server over real HTTP.
type liveServer struct {
	mu    sync.Mutex
	lines []liveLine
	url   string
}

func newLiveServer(t testing.TB) *liveServer {
	ls := &liveServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var l liveLine
		d := json.NewDecoder(r.Body)
		d.UseNumber()
		if r.Method != http.MethodPost || r.URL.Path != livelines.Path || d.Decode(&l) != nil {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		l.at = time.Now()
		ls.mu.Lock()
		ls.lines = append(ls.lines, l)
		ls.mu.Unlock()
		w.Write([]byte(`{"success":true}`))
	}))
	t.Cleanup(srv.Close)
	ls.url = srv.URL
	return ls
}

func (ls *liveServer) got() []liveLine {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return slices.Clone(ls.lines)
}

func liveURL(url string) stackOption { return func(c *config.Config) { c.Logs.LiveURL = url } }

// Every line a job prints reaches the live-lines server, in order, under
// the job's logId and stream, with its secrets masked (each secret is
// printed one byte per write, the fake executor's way); a last line
// without its newline goes too, when the job ends. The counters say so.
func TestLiveLinesReachTheServer(t *testing.T) {
	ls := newLiveServer(t)
	s := startStack(t, map[jobspec.Kind]executors.Executor{jobspec.KindContainer: daemontest.NewFake()},
		liveURL(ls.url), func(c *config.Config) { c.HTTP.Listen = "127.0.0.1:0" })
	const pw = "db-pw-hunter2"
	id := s.submit(bashJob("x", map[string]string{"DB_PASSWORD": pw, "FAKE_STDOUT": "db=" + pw + "\n",
		"FAKE_STDERR": "auth failed: " + pw + "\n", "FAKE_LINES": "40", "FAKE_INTERVAL": "1ms"}))
	tail := s.submit(bashJob("x", map[string]string{"FAKE_STDOUT": "no newline at the end"}))
	v := s.wait(id, testenv.Patience)
	s.wait(tail, testenv.Patience)
	if v.Status != backend.StatusCompleted || v.Output.Stdout != "db=[MASKED]\n"+lines(40) {
		t.Fatalf("job %s: %s %q", id, v.Status, v.Output.Stdout)
	}
	want := map[string][]string{"stdout": {"db=[MASKED]"}, "stderr": {"auth failed: [MASKED]"}}
	for i := 1; i <= 40; i++ {
		want["stdout"] = append(want["stdout"], "line "+itoa(i))
	}
	testenv.Eventually(t, testenv.Patience, "every line to reach the live server", func() bool {
		return len(ls.got()) == 1+len(want["stdout"])+len(want["stderr"])
	})
	got := map[string]map[string][]string{} // by logId, stream
	for _, l := range ls.got() {
		if strings.Contains(l.Line, pw) {
			t.Errorf("a secret went out live: %q", l.Line)
		}
		if got[l.LogID.String()] == nil {
			got[l.LogID.String()] = map[string][]string{}
		}
		got[l.LogID.String()][l.Stream] = append(got[l.LogID.String()][l.Stream], l.Line)
	}
	// The embedded backend numbers jobs 1, 2, ... in the order submitted;
	// that number is their metadata.logId.
	if g := got["1"]; !slices.Equal(g["stdout"], want["stdout"]) || !slices.Equal(g["stderr"], want["stderr"]) {
		t.Errorf("job 1's live lines: %q\nwant %q", g, want)
	}
	if g := got["2"]; len(g) != 1 || !slices.Equal(g["stdout"], []string{"no newline at the end"}) {
		t.Errorf("job 2's live lines: %q", g)
	}
	metrics := s.scrape(t)
	if n := testenv.MetricValue(metrics, "cronium_orchestrator_live_lines_sent_total"); n != 43 {
		t.Errorf("live_lines_sent_total = %v, want 43", n)
	}
	for _, r := range livelines.DropReasons {
		if n := testenv.MetricValue(metrics, "cronium_orchestrator_live_lines_dropped_total", "reason", r); n != 0 {
			t.Errorf("live_lines_dropped_total{reason=%q} = %v, want 0", r, n)
		}
	}
}

// A live-lines server that is down (connection refused) or stalled (it
// takes requests and never answers) holds up neither jobs nor their
// snapshots: the jobs complete with all their output, through snapshots
// while they run and /complete, and the lines are dropped and counted.
func TestLiveLinesDownNeverHoldUpJobs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()
	stalled := make(chan struct{})
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stalled:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(stall.Close)
	t.Cleanup(func() { close(stalled) })
	for name, url := range map[string]string{"refused": refused, "stalled": stall.URL} {
		t.Run(name, func(t *testing.T) {
			f := daemontest.NewFake()
			s := startStack(t, map[jobspec.Kind]executors.Executor{jobspec.KindContainer: f}, liveURL(url))
			// Held after 5 lines: the job's first snapshot must get
			// through while the live lines cannot.
			id := s.submit(bashJob("x", map[string]string{"FAKE_LINES": "3000", "TEST_HOLD_AFTER": "5"}))
			testenv.Eventually(t, testenv.Patience, "a snapshot while the job runs", func() bool {
				o, _ := s.store.Output(t.Context(), id)
				return strings.HasPrefix(o.Stdout, lines(5)) && !o.Final
			})
			f.Release()
			v := s.wait(id, testenv.Patience)
			if v.Status != backend.StatusCompleted || v.Output.Stdout != lines(3000) {
				t.Fatalf("job %s: %s, %d bytes of output", id, v.Status, len(v.Output.Stdout))
			}
			live := s.daemon.LiveLines()
			testenv.Eventually(t, testenv.Patience, "lines to be dropped", func() bool {
				return live.Stats().DroppedTotal() > 0
			})
			if st := live.Stats(); st.Sent != 0 {
				t.Errorf("stats %+v", st)
			}
			if err := s.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
