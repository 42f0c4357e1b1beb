package job

import (
	"testing"
	"time"

	"github.com/cronium/orchestrator/backend"
)

func TestRetryDelay(t *testing.T) {
	failed := verdict{outcome: OutcomeFailure}
	policy := func(max int, kind string, delay float64) *backend.RetryPolicy {
		return &backend.RetryPolicy{MaxAttempts: max, BackoffType: kind, BackoffDelay: delay}
	}
	tests := []struct {
		name   string
		policy *backend.RetryPolicy
		tries  int
		v      verdict
		want   time.Duration
		retry  bool
	}{
		{"no policy", nil, 1, failed, 0, false},
		{"one attempt allowed", policy(1, "", 5), 1, failed, 0, false},
		{"second of three", policy(3, "fixed", 5), 1, failed, 5 * time.Second, true},
		{"third of three", policy(3, "fixed", 5), 2, failed, 5 * time.Second, true},
		{"all three ran", policy(3, "fixed", 5), 3, failed, 0, false},
		{"exponential first", policy(5, "exponential", 5), 1, failed, 5 * time.Second, true},
		{"exponential third", policy(5, "exponential", 5), 3, failed, 20 * time.Second, true},
		{"linear third", policy(5, "linear", 5), 3, failed, 15 * time.Second, true},
		{"no type is fixed", policy(5, "", 0.5), 4, failed, 500 * time.Millisecond, true},
		{"bounded", policy(100, "exponential", 60), 90, failed, maxRetryDelay, true},
		{"negative delay", policy(3, "fixed", -1), 1, failed, 0, true},
		{"success", policy(3, "", 5), 1, verdict{outcome: OutcomeSuccess}, 0, false},
		{"timeout", policy(3, "", 5), 1, verdict{outcome: OutcomeTimeout}, 0, false},
		{"cancelled", policy(3, "", 5), 1, verdict{outcome: OutcomeCancelled}, 0, false},
		{"could not run", policy(3, "", 5), 1, verdict{outcome: OutcomeError}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, retry := retryDelay(tt.policy, tt.tries, tt.v)
			if got != tt.want || retry != tt.retry {
				t.Fatalf("retryDelay = %s, %v; want %s, %v", got, retry, tt.want, tt.retry)
			}
		})
	}
}
