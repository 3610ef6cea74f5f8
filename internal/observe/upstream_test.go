package observe

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// TestBackendMetrics_Attempt: every outcome is counted under its own
// label, the frequent "response" (counted without a lookup) as the
// others, and an outcome outside the list too.
func TestBackendMetrics_Attempt(t *testing.T) {
	m := NewMetrics()
	b := m.Backend("be")
	for range 3 {
		b.Attempt("response")
	}
	b.Attempt("timeout")
	b.Attempt("other")
	for outcome, want := range map[string]float64{"response": 3, "timeout": 1, "other": 1, "status_5xx": 0} {
		var d dto.Metric
		if err := m.up.attempts.WithLabelValues("be", outcome).Write(&d); err != nil {
			t.Fatal(err)
		}
		if got := d.GetCounter().GetValue(); got != want {
			t.Errorf("%s: %v, want %v", outcome, got, want)
		}
	}
}
