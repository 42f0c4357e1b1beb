package backend

import (
	"net/http"
	"testing"
	"time"
)

func TestLongPollWait(t *testing.T) {
	tests := []struct {
		requestTimeout, want time.Duration
	}{
		{30 * time.Second, 25 * time.Second},
		{time.Minute, 50 * time.Second},
		{10 * time.Second, 5 * time.Second},
		{6 * time.Second, time.Second},
		{5900 * time.Millisecond, 0}, // less than a second left: not held
		{time.Second, 0},
		{0, 0},
	}
	for _, tt := range tests {
		if got := LongPollWait(tt.requestTimeout); got != tt.want {
			t.Errorf("LongPollWait(%v) = %v, want %v", tt.requestTimeout, got, tt.want)
		}
	}
	// Whatever the timeout, a held poll ends well before it.
	for d := time.Duration(0); d <= 2*time.Minute; d += 100 * time.Millisecond {
		if w := LongPollWait(d); w != 0 && w > d-5*time.Second {
			t.Fatalf("LongPollWait(%v) = %v: not 5s below the timeout", d, w)
		}
	}
}

func TestParseLongPoll(t *testing.T) {
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 0}, // the real backend: no header
		{"30", 30 * time.Second},
		{"0.5", 500 * time.Millisecond},
		{"0", 0},
		{"-3", 0},
		{"yes", 0},
		{"NaN", 0},
		{"1e30", time.Hour},
	}
	for _, tt := range tests {
		if got := ParseLongPoll(tt.header); got != tt.want {
			t.Errorf("ParseLongPoll(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

// A held poll may take longer than the request timeout: its wait and a
// margin. (Cut at the request timeout, this one would fail.)
func TestHeldPollOutlastsTheRequestTimeout(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(1500 * time.Millisecond) // held: past the 1s request timeout, within the 2s wait
		w.Header().Set(HeaderLongPoll, "30")
		writeJSON(w, http.StatusOK, `{"jobs":[],"count":0}`)
	}), func(o *Options) { o.RequestTimeout = time.Second })
	if _, err := c.Poll(t.Context(), 1, 2*time.Second); err != nil {
		t.Fatalf("a held poll: %v", err)
	}
}

// Poll sends wait only when asked to, cut to MaxLongPollWait, and reports
// what the answer's header said.
func TestPollWaitOnTheWire(t *testing.T) {
	tests := []struct {
		name        string
		wait        time.Duration
		timeout     time.Duration
		header      string
		wantQuery   string
		wantMaxWait time.Duration
	}{
		{"no wait, backend without long polling", 0, time.Minute, "", "batchSize=2", 0},
		{"no wait, backend with it", 0, time.Minute, "30", "batchSize=2", 30 * time.Second},
		{"wait", 25 * time.Second, time.Minute, "30", "batchSize=2&wait=25", 30 * time.Second},
		{"wait cut to the longest", time.Hour, 10 * time.Second, "30", "batchSize=2&wait=50", 30 * time.Second},
		{"not cut by the request timeout", 25 * time.Second, 3 * time.Second, "30", "batchSize=2&wait=25", 30 * time.Second},
		{"fraction", 1500 * time.Millisecond, time.Minute, "", "batchSize=2&wait=1.5", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.header != "" {
					w.Header().Set(HeaderLongPoll, tt.header)
				}
				writeJSON(w, http.StatusOK, `{"jobs":[{"id":"j1"}],"count":1}`)
			}), func(o *Options) { o.RequestTimeout = tt.timeout })
			p, err := c.Poll(t.Context(), 2, tt.wait)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Jobs) != 1 || p.MaxWait != tt.wantMaxWait {
				t.Fatalf("polled %+v, want 1 job and max wait %v", p, tt.wantMaxWait)
			}
			if q := rec.all()[0].RawQuery; q != tt.wantQuery {
				t.Fatalf("query %q, want %q", q, tt.wantQuery)
			}
		})
	}
}
