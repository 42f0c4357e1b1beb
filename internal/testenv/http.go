package testenv

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// SyncBuffer collects output written from other goroutines (a child
// process's copy goroutines, a logger) and can be read while it grows.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// FreeAddr is a loopback address nothing listens on: free now, and
// refusing connections until something binds it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// Get fetches url and returns the status code and body; a transport error
// fails the test.
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// Scrape fetches a /metrics URL and returns the exposition text; any
// answer but 200 fails the test.
func Scrape(t testing.TB, url string) string {
	t.Helper()
	code, body := Get(t, url)
	if code != http.StatusOK {
		t.Fatalf("%s: %d %s", url, code, body)
	}
	return body
}

// MetricValue is the sample of one series in exposition text, or -1 when
// the series is absent. labels are name, value pairs and must be the
// series' whole label set: MetricValue(text, "jobs_finished_total",
// "executor", "container", "outcome", "success").
func MetricValue(text, name string, labels ...string) float64 {
	if len(labels)%2 != 0 {
		panic("testenv.MetricValue: labels must be name, value pairs")
	}
	series := name
	if len(labels) > 0 {
		var pairs [][2]string
		for i := 0; i < len(labels); i += 2 {
			pairs = append(pairs, [2]string{labels[i], labels[i+1]})
		}
		sort.Slice(pairs, func(i, j int) bool { return pairs[i][0] < pairs[j][0] }) // as client_golang prints them
		var printed []string
		for _, p := range pairs {
			printed = append(printed, p[0]+"="+strconv.Quote(p[1]))
		}
		series += "{" + strings.Join(printed, ",") + "}"
	}
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			if v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64); err == nil {
				return v
			}
		}
	}
	return -1
}
