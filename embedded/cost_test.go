package embedded

import (
	"encoding/json"
	"testing"
)

func TestCostOf(t *testing.T) {
	for _, tc := range []struct {
		metrics, want string // want: the view as JSON and its line, or "" for none
		line          string
	}{
		{`{"durationMs":5}`, "", ""},
		{``, "", ""},
		{`not json`, "", ""},
		{`{"peakMemoryBytes":66060288,"cpuSeconds":1.084,"costSource":"cgroup-sampled"}`,
			`{"peakMemoryBytes":66060288,"cpuSeconds":1.084,"source":"cgroup-sampled"}`,
			"peak memory 63.0 MiB, CPU 1.08 s (cgroup-sampled)"},
		{`{"cpuSeconds":0,"costSource":"shell-times"}`, `{"cpuSeconds":0,"source":"shell-times"}`, "CPU 0.00 s (shell-times)"},
	} {
		c := costOf(json.RawMessage(tc.metrics))
		if tc.want == "" {
			if c != nil {
				t.Errorf("costOf(%s) = %+v, want none", tc.metrics, c)
			}
			continue
		}
		got, _ := json.Marshal(c)
		if c == nil || string(got) != tc.want || c.String() != tc.line {
			t.Errorf("costOf(%s) = %s %q, want %s %q", tc.metrics, got, c, tc.want, tc.line)
		}
	}
}
