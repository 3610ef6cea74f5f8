package config

import "time"

// Defaults of the upstream resilience keys (backends[] and the timeouts of
// apis[] and operations[]). docs/traffic.md states the same values.
const (
	DefaultLBAlgorithm             = LBRoundRobin
	DefaultInstanceWeight          = 1
	DefaultHealthInterval          = 10 * time.Second
	DefaultHealthTimeout           = 2 * time.Second
	DefaultHealthyThreshold        = 2
	DefaultUnhealthyThreshold      = 3
	DefaultHealthExpectedStatus    = "200-399"
	DefaultConsecutive5xx          = 5
	DefaultConsecutiveConnectFail  = 3
	DefaultBaseEjection            = 30 * time.Second
	DefaultMaxEjection             = 5 * time.Minute
	DefaultMaxEjectedPercent       = 50
	DefaultBreakerFailureRatio     = 0.5
	DefaultBreakerWindow           = 10 * time.Second
	DefaultBreakerMinimumRequests  = 20
	DefaultBreakerOpenDuration     = 30 * time.Second
	DefaultBreakerHalfOpenRequests = 3
	DefaultMaxRetries              = 2
	DefaultRetryBackoffBase        = 25 * time.Millisecond
	DefaultRetryBackoffMax         = 250 * time.Millisecond
	DefaultRetryBudgetPercent      = 20
	DefaultRetryBudgetMinRetries   = 10
	DefaultRetryBudgetWindow       = 10 * time.Second
	DefaultRequestTimeout          = 30 * time.Second
	MaxInstanceWeight              = 100
	MaxRetriesLimit                = 10
	MinHealthInterval              = 10 * time.Millisecond
	MinRetryBudgetWindow           = time.Second
	MaxRetryBudgetWindow           = 5 * time.Minute
	MinBreakerWindow               = 100 * time.Millisecond
	MaxBreakerWindow               = 10 * time.Minute
	MaxBreakerHalfOpenRequests     = 1000
	MaxBreakerMinimumRequests      = 1_000_000
	MaxOutlierConsecutiveThreshold = 1000
	MaxHealthThreshold             = 100
	MaxMaxConcurrentRequests       = 1_000_000
)

// Load-balancing algorithms.
const (
	LBRoundRobin     = "round_robin"
	LBWeighted       = "weighted"
	LBLeastRequests  = "least_requests"
	LBConsistentHash = "consistent_hash"
)

// LBAlgorithms lists the accepted load_balancing.algorithm values.
var LBAlgorithms = []string{LBRoundRobin, LBWeighted, LBLeastRequests, LBConsistentHash}

// LoadBalancing chooses how a backend's requests are spread over its
// instances.
type LoadBalancing struct {
	Algorithm string `yaml:"algorithm" jsonschema:"enum=round_robin,enum=weighted,enum=least_requests,enum=consistent_hash" jsonschema_description:"round_robin (default), weighted (smooth weighted round robin on instances[].weight), least_requests (power of two choices on in-flight requests) or consistent_hash (sticky on hash_key)."`
	HashKey   string `yaml:"hash_key" jsonschema_description:"consistent_hash only, and required there: header:NAME, cookie:NAME, client_ip, subject or claim:PATH. A request without the key is balanced round robin."`
}

// HealthCheck is an active health check: an HTTP GET sent to every
// instance on a fixed interval.
type HealthCheck struct {
	Path               string   `yaml:"path" jsonschema:"required" jsonschema_description:"Path of the GET request, e.g. /healthz."`
	Interval           Duration `yaml:"interval" jsonschema_description:"Time between two checks of an instance. Default 10s; at least 10ms."`
	Timeout            Duration `yaml:"timeout" jsonschema_description:"Time one check may take. Default 2s (or the interval if shorter); at most the interval."`
	HealthyThreshold   int      `yaml:"healthy_threshold" jsonschema_description:"Consecutive passing checks that make an unhealthy instance healthy. Default 2."`
	UnhealthyThreshold int      `yaml:"unhealthy_threshold" jsonschema_description:"Consecutive failing checks that make a healthy instance unhealthy. Default 3."`
	ExpectedStatus     string   `yaml:"expected_status" jsonschema_description:"Status codes that pass, as N or N-M. Default 200-399."`
}

// OutlierDetection ejects instances whose real traffic fails (passive
// health checking). It is on unless disabled.
type OutlierDetection struct {
	Disabled                   bool     `yaml:"disabled" jsonschema_description:"Turn passive ejection off."`
	Consecutive5xx             int      `yaml:"consecutive_5xx" jsonschema_description:"Consecutive 5xx responses (or attempt timeouts) that eject an instance. Default 5."`
	ConsecutiveConnectFailures int      `yaml:"consecutive_connect_failures" jsonschema_description:"Consecutive connect failures (refused, reset or closed before any response byte, dial timeout) that eject an instance. Default 3."`
	BaseEjection               Duration `yaml:"base_ejection" jsonschema_description:"Length of a first ejection; the n-th is base_ejection × 2^(n-1). Default 30s."`
	MaxEjection                Duration `yaml:"max_ejection" jsonschema_description:"Longest ejection. Default 5m."`
	MaxEjectedPercent          int      `yaml:"max_ejected_percent" jsonschema_description:"Never eject more than this percentage of the instances (1-100). Default 50."`
}

// CircuitBreaker stops calling a backend whose requests mostly fail.
type CircuitBreaker struct {
	FailureRatio     float64  `yaml:"failure_ratio" jsonschema_description:"Share of failed requests in the window that opens the breaker, in (0, 1]. Default 0.5."`
	Window           Duration `yaml:"window" jsonschema_description:"Length of the sliding window. Default 10s."`
	MinimumRequests  int      `yaml:"minimum_requests" jsonschema_description:"Requests the window must hold before the ratio is judged. Default 20."`
	OpenDuration     Duration `yaml:"open_duration" jsonschema_description:"How long the breaker stays open before probing. Default 30s."`
	HalfOpenRequests int      `yaml:"half_open_requests" jsonschema_description:"Probe requests let through when half-open; all must succeed to close. Default 3."`
}

// Retries says which failed upstream attempts are tried again.
type Retries struct {
	MaxRetries    *int         `yaml:"max_retries" jsonschema_description:"Retries after the first attempt (0-10). Default 2; 0 turns retries off."`
	OnStatus      []int        `yaml:"on_status" jsonschema_description:"Response statuses (500-599) that are retried, e.g. [502, 503, 504]. Default none: only connect failures are retried."`
	NonIdempotent bool         `yaml:"non_idempotent" jsonschema_description:"Also retry methods that are not idempotent (POST, PATCH). Default false."`
	Backoff       RetryBackoff `yaml:"backoff"`
	Budget        RetryBudget  `yaml:"budget"`
}

// RetryBackoff is an exponential backoff with full jitter.
type RetryBackoff struct {
	Base Duration `yaml:"base" jsonschema_description:"Upper bound of the first wait; it doubles with each retry. Default 25ms."`
	Max  Duration `yaml:"max" jsonschema_description:"Largest upper bound of a wait. Default 250ms."`
}

// RetryBudget bounds retries to a share of the requests.
type RetryBudget struct {
	Percent    int      `yaml:"percent" jsonschema_description:"Retries allowed as a percentage of requests in the window (1-100). Default 20."`
	MinRetries *int     `yaml:"min_retries" jsonschema_description:"Retries always allowed in the window, whatever the traffic. Default 10."`
	Window     Duration `yaml:"window" jsonschema_description:"Length of the rolling window. Default 10s."`
}

// UpstreamTimeouts bound the upstream exchange of an API or operation.
type UpstreamTimeouts struct {
	Request         Duration `yaml:"request" jsonschema_description:"Deadline for the whole upstream exchange, retries included, until the response headers arrive. Default 30s. It may fire up to 1/32 of it late (a kept connection keeps its timer)."`
	UpstreamAttempt Duration `yaml:"upstream_attempt" jsonschema_description:"Deadline of one attempt, until its response headers arrive. Default: the request deadline. It may fire up to 1/32 of it late (a kept connection keeps its timer)."`
}
