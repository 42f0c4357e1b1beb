package livelines

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cronium/orchestrator/internal/testenv"
	"github.com/cronium/orchestrator/output"
)

// receiver is a live-lines server: it records what it is sent.
type receiver struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != Path || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "wrong request", http.StatusBadRequest)
		return
	}
	var b map[string]any
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.lines = append(rc.lines, b)
	rc.mu.Unlock()
	w.Write([]byte(`{"success":true}`))
}

func (rc *receiver) got() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.lines)
}

// run starts s until the test ends (or stop is called) and waits for it.
func run(t *testing.T, s *Sender) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(testenv.Patience):
			t.Fatal("Run did not return")
		}
	}
	t.Cleanup(stop)
	return stop
}

// Each job's lines reach the server in order, with its logId (a number
// when it is one) and stream; several jobs go at once.
func TestLinesArriveInOrder(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s, err := New(Options{URL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	const perJob = 200
	jobs := []string{"7", "8", "not-a-number"}
	var wg sync.WaitGroup
	for _, id := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sink := s.ForJob(id)
			for i := range perJob {
				st := output.Stdout
				if i%3 == 0 {
					st = output.Stderr
				}
				sink.Line(st, fmt.Sprintf("%s line %d \x00", id, i))
			}
		}()
	}
	wg.Wait()
	testenv.Eventually(t, testenv.Patience, "every line to arrive", func() bool { return len(rc.got()) == perJob*len(jobs) })
	next := map[any]int{}
	for _, l := range rc.got() {
		id := l["logId"]
		i := next[id]
		next[id]++
		want := output.Stdout.String()
		if i%3 == 0 {
			want = output.Stderr.String()
		}
		name := fmt.Sprint(id)
		if _, ok := id.(float64); !ok && name != "not-a-number" {
			t.Fatalf("logId %#v: want a number", id)
		}
		if l["line"] != fmt.Sprintf("%s line %d \uFFFD", name, i) || l["stream"] != want {
			t.Fatalf("line %d of job %v: %v", i, id, l)
		}
	}
	// The sender counts a batch once the server's answer is back, which
	// can be after the server has noted its lines.
	testenv.Eventually(t, testenv.Patience, "every line counted sent", func() bool {
		return s.Stats().Sent == perJob*int64(len(jobs))
	})
	if st := s.Stats(); st.DroppedTotal() != 0 {
		t.Errorf("stats %+v", st)
	}
	if s.ForJob("") != nil {
		t.Error("a job without logId has a sink")
	}
}

// A server that refuses connections never holds up Send: the lines are
// dropped and counted, the queue stays within its bound, and Run stops.
func TestRefusedServerDropsLines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	s, err := New(Options{URL: url, Workers: 2, QueueBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, s)
	line := string(make([]byte, 1000))
	start := time.Now()
	for range 10000 {
		s.Send(Line{LogID: "1", Stream: "stdout", Text: line})
	}
	t.Logf("10000 lines of 1 KB sent in %s", time.Since(start))
	st := s.Stats()
	if st.Dropped[DropOverflow] == 0 {
		t.Errorf("no overflow counted: %+v", st)
	}
	bound := (64<<10)/2 + output.MaxLineBytes + perLineOverhead // per worker
	if st.Queued*(1000+perLineOverhead) > 2*bound {
		t.Errorf("%d lines queued, beyond the bound", st.Queued)
	}
	testenv.Eventually(t, testenv.Patience, "a failed request to be counted", func() bool {
		return s.Stats().Dropped[DropFailed] > 0
	})
	stop()
	if st := s.Stats(); st.Sent != 0 {
		t.Errorf("sent %d to nowhere", st.Sent)
	}
}

// A server that accepts requests and never answers holds one request
// per worker until its timeout; Send goes on dropping the oldest lines,
// and Run still stops (the drain gives up at the first failure).
func TestStalledServerNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	s, err := New(Options{URL: srv.URL, Workers: 1, QueueBytes: 32 << 10, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, s)
	for i := range 5000 {
		done := make(chan struct{})
		go func() { s.Send(Line{LogID: "3", Stream: "stderr", Text: fmt.Sprint("line ", i)}); close(done) }()
		select {
		case <-done:
		case <-time.After(testenv.Patience):
			t.Fatal("Send blocked")
		}
	}
	if st := s.Stats(); st.Dropped[DropOverflow] == 0 || st.Sent != 0 {
		t.Errorf("stats %+v", st)
	}
	stop()
}

// A line the server refuses (4xx) is counted and passed over at once: the
// lines after it still go.
func TestRefusedLineIsPassedOver(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b map[string]any
		_ = json.NewDecoder(r.Body).Decode(&b)
		if b["line"] == "bad" {
			http.Error(w, `{"error":"no"}`, http.StatusNotFound)
			return
		}
		rc.mu.Lock()
		rc.lines = append(rc.lines, b)
		rc.mu.Unlock()
	}))
	defer srv.Close()
	s, err := New(Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	for _, text := range []string{"a", "bad", "b"} {
		s.Send(Line{LogID: "5", Stream: "stdout", Text: text})
	}
	testenv.Eventually(t, testenv.Patience, "the good lines", func() bool { return len(rc.got()) == 2 })
	if st := s.Stats(); st.Dropped[DropRejected] != 1 || st.Sent != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestNewRefusesABadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:5002", "ftp://x", "http://"} {
		if _, err := New(Options{URL: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}
