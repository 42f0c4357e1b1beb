package testenv

import "testing"

func TestMetricValue(t *testing.T) {
	text := `# HELP x_total X.
# TYPE x_total counter
x_total{code="2xx",method="POST",route="/api/internal/jobs/{id}/complete"} 4
x_total{code="5xx",method="POST",route="/api/internal/jobs/{id}/complete"} 1
up 1
x_seconds_count{a="1",a1="2"} 7
`
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"x_total", []string{"route", "/api/internal/jobs/{id}/complete", "method", "POST", "code", "2xx"}, 4},
		{"x_total", []string{"code", "5xx", "method", "POST", "route", "/api/internal/jobs/{id}/complete"}, 1},
		{"x_total", []string{"code", "2xx"}, -1}, // the whole label set, or nothing
		{"up", nil, 1},
		{"x_seconds_count", []string{"a1", "2", "a", "1"}, 7},
		{"down", nil, -1},
	}
	for _, tt := range tests {
		if got := MetricValue(text, tt.name, tt.labels...); got != tt.want {
			t.Errorf("MetricValue(%s, %v) = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}
