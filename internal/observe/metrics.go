// Package observe records what the gateway did: Prometheus metrics and the
// JSON access log. It holds no policy; the gateway tells it what happened.
package observe

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the gateway's Prometheus collectors, registered on a
// registry of their own (never the global one).
type Metrics struct {
	Registry *prometheus.Registry

	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	upstream      *prometheus.HistogramVec
	inFlight      prometheus.Gauge
	AuthnFailures *prometheus.CounterVec
	AuthzDenials  *prometheus.CounterVec
	JWKSFetches   *prometheus.CounterVec
	Reloads       *prometheus.CounterVec
	ConfigInfo    *prometheus.GaugeVec
	LastReload    prometheus.Gauge
	Rejected      *prometheus.CounterVec
	policy        *prometheus.CounterVec

	up *upstreamCollectors
}

// durationBuckets suit a gateway: sub-millisecond to tens of seconds.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NewMetrics creates and registers the collectors.
func NewMetrics() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_requests_total",
		Help: "Requests handled, by API, operation and response status code.",
	}, []string{"api", "operation", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gatehouse_request_duration_seconds",
		Help:    "Time from receiving a request to the end of its response, by API and operation.",
		Buckets: durationBuckets,
	}, []string{"api", "operation"})
	m.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gatehouse_upstream_duration_seconds",
		Help:    "Time from sending a request to a backend to receiving its response headers, by backend.",
		Buckets: durationBuckets,
	}, []string{"backend"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gatehouse_requests_in_flight",
		Help: "Requests being served now.",
	})
	m.AuthnFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_authn_failures_total",
		Help: "Authentication failures, by reason (missing_credentials, invalid_token:expired, invalid_api_key, ...).",
	}, []string{"reason"})
	m.AuthzDenials = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_authz_denials_total",
		Help: "Authorization denials, by API, operation and reason (missing_scope, missing_group, ...).",
	}, []string{"api", "operation", "reason"})
	m.JWKSFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_jwks_fetches_total",
		Help: "Fetches of identity provider keys, by provider and outcome.",
	}, []string{"provider", "outcome"})
	m.Reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_config_reloads_total",
		Help: "Configuration loads, by outcome (success, failure).",
	}, []string{"outcome"})
	m.ConfigInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "gatehouse_config_info",
		Help: "The version of the configuration being served (value 1).",
	}, []string{"version"})
	m.LastReload = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "gatehouse_config_last_success_timestamp_seconds",
		Help: "When the configuration being served was loaded.",
	})
	m.Rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_requests_rejected_total",
		Help: "Requests refused before an operation was chosen, by reason (bad_path, uri_too_long, no_route, method_not_allowed).",
	}, []string{"reason"})
	m.policy = newPolicyDecisions()
	m.Registry.MustRegister(m.policy)
	m.up = newUpstreamCollectors()
	m.Registry.MustRegister(m.up.collectors()...)
	m.Registry.MustRegister(m.requests, m.duration, m.upstream, m.inFlight, m.AuthnFailures,
		m.AuthzDenials, m.JWKSFetches, m.Reloads, m.ConfigInfo, m.LastReload, m.Rejected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, o := range []string{"success", "failure"} {
		m.Reloads.WithLabelValues(o)
	}
	return m
}

// InFlight returns the in-flight gauge.
func (m *Metrics) InFlight() prometheus.Gauge { return m.inFlight }

// Route returns the per-route collectors of one API operation, resolved
// once so that the request path does no label lookups.
func (m *Metrics) Route(api, operation string) *RouteMetrics {
	return &RouteMetrics{
		m:         m,
		api:       api,
		operation: operation,
		duration:  m.duration.WithLabelValues(api, operation),
	}
}

// Upstream returns the upstream latency histogram of a backend.
func (m *Metrics) Upstream(backend string) prometheus.Observer {
	return m.upstream.WithLabelValues(backend)
}

// RouteMetrics are the collectors of one operation.
type RouteMetrics struct {
	m              *Metrics
	api, operation string
	duration       prometheus.Observer
	codes          sync.Map // int → *codeCounter
	// last is the counter of the status last counted: an operation
	// answers most requests with one status, found without the map.
	last atomic.Pointer[codeCounter]
}

type codeCounter struct {
	code int
	c    prometheus.Counter
}

// Observe records one finished request.
func (r *RouteMetrics) Observe(code int, seconds float64) {
	r.duration.Observe(seconds)
	if l := r.last.Load(); l != nil && l.code == code {
		l.c.Inc()
		return
	}
	v, ok := r.codes.Load(code)
	if !ok {
		v, _ = r.codes.LoadOrStore(code, &codeCounter{code, r.m.requests.WithLabelValues(r.api, r.operation, codeLabel(code))})
	}
	c := v.(*codeCounter)
	r.last.Store(c)
	c.c.Inc()
}

// codeLabel is the code label of a status: the code itself when it is
// registered (http.StatusText knows it) or 499 (the access log's client
// closed request), its class ("2xx", "7xx") otherwise. A backend may send
// any three-digit code, and an HTTPS backend's are passed on as they are:
// without this, one operation could have 900 series.
func codeLabel(code int) string {
	if http.StatusText(code) != "" || code == 499 {
		return strconv.Itoa(code)
	}
	if code >= 100 && code <= 999 {
		return strconv.Itoa(code/100) + "xx"
	}
	return "other"
}

// Denied records an authorization denial.
func (r *RouteMetrics) Denied(reason string) {
	r.m.AuthzDenials.WithLabelValues(r.api, r.operation, reason).Inc()
}
