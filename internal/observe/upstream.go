package observe

import (
	"github.com/prometheus/client_golang/prometheus"
)

// upstreamCollectors are the metrics of backend pools.
type upstreamCollectors struct {
	health   *prometheus.GaugeVec
	ejection *prometheus.CounterVec
	breaker  *prometheus.GaugeVec
	retries  *prometheus.CounterVec
	attempts *prometheus.CounterVec
	errors   *prometheus.CounterVec
}

// Outcome labels known in advance, resolved once per backend so that the
// request path does no label lookups.
var (
	attemptOutcomes = []string{"response", "status_5xx", "timeout", "connect_error", "error", "canceled", "body_timeout"}
	retryOutcomes   = []string{"sent", "budget_exhausted", "no_time"}
)

func newUpstreamCollectors() *upstreamCollectors {
	return &upstreamCollectors{
		health: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_upstream_instance_healthy",
			Help: "1 if a backend instance may get traffic (passes active checks and is not ejected), else 0.",
		}, []string{"backend", "instance"}),
		ejection: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_ejections_total",
			Help: "Outlier ejections of backend instances.",
		}, []string{"backend", "instance"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_upstream_circuit_state",
			Help: "Circuit breaker state by backend: 0 closed, 1 open, 2 half-open.",
		}, []string{"backend"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_retries_total",
			Help: "Retry decisions by backend and outcome: sent, budget_exhausted (the retry budget refused), no_time (the request deadline left no room).",
		}, []string{"backend", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_attempts_total",
			Help: "Upstream attempts by backend and outcome: response, status_5xx, timeout, connect_error, error, canceled, body_timeout (the deadline passed while the client's request body was awaited).",
		}, []string{"backend", "outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_upstream_errors_total",
			Help: "Requests the gateway answered itself instead of a backend, by backend and reason: no_healthy_instance, circuit_open, concurrency_limit, upstream_timeout, upstream_error.",
		}, []string{"backend", "reason"}),
	}
}

func (u *upstreamCollectors) collectors() []prometheus.Collector {
	return []prometheus.Collector{u.health, u.ejection, u.breaker, u.retries, u.attempts, u.errors}
}

// BackendMetrics are the collectors of one backend. They implement the
// upstream pool's observer.
type BackendMetrics struct {
	u        *upstreamCollectors
	backend  string
	attempts map[string]prometheus.Counter
	response prometheus.Counter // attempts["response"], the most frequent outcome, without a lookup
	retries  map[string]prometheus.Counter
	breaker  prometheus.Gauge
}

// Backend returns the collectors of one backend.
func (m *Metrics) Backend(name string) *BackendMetrics {
	u := m.up
	b := &BackendMetrics{u: u, backend: name, attempts: map[string]prometheus.Counter{}, retries: map[string]prometheus.Counter{},
		breaker: u.breaker.WithLabelValues(name)}
	for _, o := range attemptOutcomes {
		b.attempts[o] = u.attempts.WithLabelValues(name, o)
	}
	b.response = b.attempts["response"]
	for _, o := range retryOutcomes {
		b.retries[o] = u.retries.WithLabelValues(name, o)
	}
	return b
}

// InstanceHealth sets the health gauge of an instance.
func (b *BackendMetrics) InstanceHealth(instance string, eligible bool) {
	v := 0.0
	if eligible {
		v = 1
	}
	b.u.health.WithLabelValues(b.backend, instance).Set(v)
}

// InstanceRemoved drops the series of an instance that left the pool.
func (b *BackendMetrics) InstanceRemoved(instance string) {
	b.u.health.DeleteLabelValues(b.backend, instance)
	b.u.ejection.DeleteLabelValues(b.backend, instance)
}

// Ejected counts an outlier ejection.
func (b *BackendMetrics) Ejected(instance string) {
	b.u.ejection.WithLabelValues(b.backend, instance).Inc()
}

// BreakerState sets the breaker gauge (0 closed, 1 open, 2 half-open).
func (b *BackendMetrics) BreakerState(state uint8) { b.breaker.Set(float64(state)) }

// Attempt counts an upstream attempt.
func (b *BackendMetrics) Attempt(outcome string) {
	if outcome == "response" {
		b.response.Inc()
		return
	}
	if c, ok := b.attempts[outcome]; ok {
		c.Inc()
		return
	}
	b.u.attempts.WithLabelValues(b.backend, outcome).Inc()
}

// Retry counts a retry decision.
func (b *BackendMetrics) Retry(outcome string) {
	if c, ok := b.retries[outcome]; ok {
		c.Inc()
		return
	}
	b.u.retries.WithLabelValues(b.backend, outcome).Inc()
}

// Failed counts a request the gateway answered itself (503, 504, 502).
func (b *BackendMetrics) Failed(reason string) {
	b.u.errors.WithLabelValues(b.backend, reason).Inc()
}
