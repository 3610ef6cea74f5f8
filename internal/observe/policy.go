package observe

import "github.com/prometheus/client_golang/prometheus"

func newPolicyDecisions() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_policy_decisions_total",
		Help: "Decisions of traffic policies (cors, ip_filter, rate_limit, quota, request_validation, mock), by API, operation, policy and outcome (allowed, denied, error).",
	}, []string{"api", "operation", "policy", "outcome"})
}

// PolicyMetrics count the decisions of one policy of one operation; the
// counters are resolved once, at compile time.
type PolicyMetrics struct {
	allowed, denied, failed prometheus.Counter
}

// Policy returns the decision counters of a policy of an operation.
func (m *Metrics) Policy(api, operation, policy string) *PolicyMetrics {
	return &PolicyMetrics{
		allowed: m.policy.WithLabelValues(api, operation, policy, "allowed"),
		denied:  m.policy.WithLabelValues(api, operation, policy, "denied"),
		failed:  m.policy.WithLabelValues(api, operation, policy, "error"),
	}
}

// Observe counts one decision: allowed, denied or error.
func (p *PolicyMetrics) Observe(outcome string) {
	switch outcome {
	case "allowed":
		p.allowed.Inc()
	case "denied":
		p.denied.Inc()
	default:
		p.failed.Inc()
	}
}
