package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// HashKeyKind is where a consistent-hash key is read from.
type HashKeyKind uint8

// Hash key sources.
const (
	HashKeyHeader   HashKeyKind = iota + 1 // header:NAME
	HashKeyCookie                          // cookie:NAME
	HashKeyClientIP                        // client_ip
	HashKeySubject                         // subject
	HashKeyClaim                           // claim:PATH
)

// HashKey is a parsed load_balancing.hash_key.
type HashKey struct {
	Kind HashKeyKind
	Name string // the header name, cookie name or claim path
}

var cookieNameRE = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_` + "`" + `|~-]+$`)

// ParseHashKey parses header:NAME, cookie:NAME, client_ip, subject or
// claim:PATH.
func ParseHashKey(s string) (HashKey, error) {
	switch s {
	case "client_ip":
		return HashKey{Kind: HashKeyClientIP}, nil
	case "subject":
		return HashKey{Kind: HashKeySubject}, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok {
		return HashKey{}, fmt.Errorf("invalid hash_key %q: use header:NAME, cookie:NAME, client_ip, subject or claim:PATH", s)
	}
	switch kind {
	case "header":
		if !headerNameRE.MatchString(name) {
			return HashKey{}, fmt.Errorf("invalid hash_key %q: %q is not a header name", s, name)
		}
		return HashKey{Kind: HashKeyHeader, Name: name}, nil
	case "cookie":
		if !cookieNameRE.MatchString(name) {
			return HashKey{}, fmt.Errorf("invalid hash_key %q: %q is not a cookie name", s, name)
		}
		return HashKey{Kind: HashKeyCookie, Name: name}, nil
	case "claim":
		if !validClaimPath(name) {
			return HashKey{}, fmt.Errorf("invalid hash_key %q: %q is not a claim path (dot-separated names, none empty)", s, name)
		}
		return HashKey{Kind: HashKeyClaim, Name: name}, nil
	}
	return HashKey{}, fmt.Errorf("invalid hash_key %q: unknown source %q (known: header, cookie, client_ip, subject, claim)", s, kind)
}

// ParseStatusRange parses a status code N or a range N-M, both within
// 100-599.
func ParseStatusRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi = lo
	var err2 error
	if isRange {
		hi, err2 = strconv.Atoi(strings.TrimSpace(b))
	}
	switch {
	case err1 != nil || err2 != nil:
		return 0, 0, fmt.Errorf("invalid status range %q: write N or N-M, e.g. 200-399", s)
	case lo < 100 || hi > 599 || lo > hi:
		return 0, 0, fmt.Errorf("invalid status range %q: codes must be within 100-599, low first", s)
	}
	return lo, hi, nil
}

// written reports whether the value at path appears in the file (so that
// an explicit 0 can be told from an absent key).
func (v *validator) written(path string) bool {
	_, ok := v.r.doc.positions[path]
	return ok
}

// intRange reports an int key that is written and outside [lo, hi].
func (v *validator) intRange(path string, n, lo, hi int) {
	if v.written(path) && (n < lo || n > hi) {
		v.r.Errorf(path, "must be between %d and %d", lo, hi)
	}
}

// durationRange reports a written duration outside [lo, hi].
func (v *validator) durationRange(path string, d Duration, lo, hi time.Duration) {
	if d.Set && (d.Duration < lo || d.Duration > hi) {
		v.r.Errorf(path, "must be between %s and %s", lo, hi)
	}
}

// upstreams checks the resilience keys of backends and the upstream
// timeouts of APIs and operations.
func (v *validator) upstreams() {
	for i := range v.c.Backends {
		b := &v.c.Backends[i]
		p := Index("backends", i)
		for j := range b.Instances {
			v.intRange(Field(Index(Field(p, "instances"), j), "weight"), b.Instances[j].Weight, 1, MaxInstanceWeight)
		}
		v.loadBalancing(Field(p, "load_balancing"), b.LoadBalancing)
		v.healthCheck(Field(p, "health_check"), b.HealthCheck)
		v.outlierDetection(Field(p, "outlier_detection"), b.OutlierDetection)
		v.circuitBreaker(Field(p, "circuit_breaker"), b.CircuitBreaker)
		v.intRange(Field(p, "max_concurrent_requests"), b.MaxConcurrentRequests, 1, MaxMaxConcurrentRequests)
		v.retries(Field(p, "retries"), b.Retries)
	}
	for i := range v.c.APIs {
		a := &v.c.APIs[i]
		p := Index("apis", i)
		v.upstreamTimeouts(Field(p, "timeouts"), a.Timeouts, nil)
		for j := range a.Operations {
			v.upstreamTimeouts(Field(Index(Field(p, "operations"), j), "timeouts"), a.Operations[j].Timeouts, a.Timeouts)
		}
	}
}

func (v *validator) loadBalancing(p string, lb *LoadBalancing) {
	if lb == nil {
		return
	}
	alg := lb.Algorithm
	if alg != "" && !contains(LBAlgorithms, alg) {
		v.r.Errorf(Field(p, "algorithm"), "unknown algorithm %q (known: %s)%s", alg, strings.Join(LBAlgorithms, ", "), didYouMean(alg, LBAlgorithms))
		return
	}
	switch {
	case alg == LBConsistentHash && lb.HashKey == "":
		v.r.Errorf(p, "consistent_hash needs a hash_key (header:NAME, cookie:NAME, client_ip, subject or claim:PATH)")
	case alg != LBConsistentHash && lb.HashKey != "":
		v.r.Errorf(Field(p, "hash_key"), "hash_key applies only to the consistent_hash algorithm")
	case lb.HashKey != "":
		if _, err := ParseHashKey(lb.HashKey); err != nil {
			v.r.Errorf(Field(p, "hash_key"), "%v", err)
		}
	}
}

func (v *validator) healthCheck(p string, hc *HealthCheck) {
	if hc == nil {
		return
	}
	if hc.Path != "" && (!strings.HasPrefix(hc.Path, "/") || strings.ContainsAny(hc.Path, " \t\r\n#")) {
		v.r.Errorf(Field(p, "path"), "%q must be an absolute path starting with '/', without spaces or a fragment", hc.Path)
	}
	v.durationRange(Field(p, "interval"), hc.Interval, MinHealthInterval, 24*time.Hour)
	v.positive(Field(p, "timeout"), hc.Timeout)
	interval := hc.Interval.Or(DefaultHealthInterval)
	if hc.Timeout.Set && hc.Timeout.Duration > interval {
		v.r.Errorf(Field(p, "timeout"), "must be at most the interval (%s)", interval)
	}
	v.intRange(Field(p, "healthy_threshold"), hc.HealthyThreshold, 1, MaxHealthThreshold)
	v.intRange(Field(p, "unhealthy_threshold"), hc.UnhealthyThreshold, 1, MaxHealthThreshold)
	if hc.ExpectedStatus != "" {
		if _, _, err := ParseStatusRange(hc.ExpectedStatus); err != nil {
			v.r.Errorf(Field(p, "expected_status"), "%v", err)
		}
	}
}

func (v *validator) outlierDetection(p string, od *OutlierDetection) {
	if od == nil {
		return
	}
	if od.Disabled {
		if *od != (OutlierDetection{Disabled: true}) {
			v.r.Errorf(p, "disabled: true cannot be combined with other outlier_detection keys")
		}
		return
	}
	v.intRange(Field(p, "consecutive_5xx"), od.Consecutive5xx, 1, MaxOutlierConsecutiveThreshold)
	v.intRange(Field(p, "consecutive_connect_failures"), od.ConsecutiveConnectFailures, 1, MaxOutlierConsecutiveThreshold)
	v.positive(Field(p, "base_ejection"), od.BaseEjection)
	v.positive(Field(p, "max_ejection"), od.MaxEjection)
	base, maxEj := od.BaseEjection.Or(DefaultBaseEjection), od.MaxEjection.Or(DefaultMaxEjection)
	if (od.BaseEjection.Set || od.MaxEjection.Set) && base > 0 && maxEj > 0 && maxEj < base {
		v.r.Errorf(Field(p, "max_ejection"), "must be at least base_ejection (%s)", base)
	}
	v.intRange(Field(p, "max_ejected_percent"), od.MaxEjectedPercent, 1, 100)
}

func (v *validator) circuitBreaker(p string, cb *CircuitBreaker) {
	if cb == nil {
		return
	}
	if v.written(Field(p, "failure_ratio")) && (cb.FailureRatio <= 0 || cb.FailureRatio > 1) {
		v.r.Errorf(Field(p, "failure_ratio"), "must be greater than 0 and at most 1")
	}
	v.durationRange(Field(p, "window"), cb.Window, MinBreakerWindow, MaxBreakerWindow)
	v.intRange(Field(p, "minimum_requests"), cb.MinimumRequests, 1, MaxBreakerMinimumRequests)
	v.positive(Field(p, "open_duration"), cb.OpenDuration)
	v.intRange(Field(p, "half_open_requests"), cb.HalfOpenRequests, 1, MaxBreakerHalfOpenRequests)
}

func (v *validator) retries(p string, r *Retries) {
	if r == nil {
		return
	}
	if r.MaxRetries != nil && (*r.MaxRetries < 0 || *r.MaxRetries > MaxRetriesLimit) {
		v.r.Errorf(Field(p, "max_retries"), "must be between 0 and %d", MaxRetriesLimit)
	}
	seen := map[int]bool{}
	for i, s := range r.OnStatus {
		sp := Index(Field(p, "on_status"), i)
		switch {
		case s < 500 || s > 599:
			v.r.Errorf(sp, "%d is not a server error; only statuses 500-599 can be retried", s)
		case seen[s]:
			v.r.Errorf(sp, "status %d is listed twice", s)
		}
		seen[s] = true
	}
	bp := Field(p, "backoff")
	v.positive(Field(bp, "base"), r.Backoff.Base)
	v.positive(Field(bp, "max"), r.Backoff.Max)
	if base, maxB := r.Backoff.Base.Or(DefaultRetryBackoffBase), r.Backoff.Max.Or(DefaultRetryBackoffMax); (r.Backoff.Base.Set || r.Backoff.Max.Set) && base > 0 && maxB > 0 && maxB < base {
		v.r.Errorf(Field(bp, "max"), "must be at least backoff.base (%s)", base)
	}
	budp := Field(p, "budget")
	v.intRange(Field(budp, "percent"), r.Budget.Percent, 1, 100)
	if m := r.Budget.MinRetries; m != nil && (*m < 0 || *m > 1_000_000) {
		v.r.Errorf(Field(budp, "min_retries"), "must be between 0 and 1000000")
	}
	v.durationRange(Field(budp, "window"), r.Budget.Window, MinRetryBudgetWindow, MaxRetryBudgetWindow)
}

// upstreamTimeouts checks the timeouts of an API (parent nil) or of an
// operation whose API has parent.
func (v *validator) upstreamTimeouts(p string, t, parent *UpstreamTimeouts) {
	if t == nil {
		return
	}
	v.positive(Field(p, "request"), t.Request)
	v.positive(Field(p, "upstream_attempt"), t.UpstreamAttempt)
	eff := EffectiveTimeouts(parent, t)
	if (t.Request.Set || t.UpstreamAttempt.Set) && eff.Request > 0 && eff.UpstreamAttempt > eff.Request {
		at := Field(p, "upstream_attempt")
		if !t.UpstreamAttempt.Set {
			at = Field(p, "request")
		}
		v.r.Errorf(at, "upstream_attempt (%s) must not exceed request (%s)", eff.UpstreamAttempt, eff.Request)
	}
}

// Timeouts are effective upstream deadlines.
type Timeouts struct {
	Request         time.Duration
	UpstreamAttempt time.Duration
}

// EffectiveTimeouts merges an operation's timeouts over its API's: each key
// the operation sets replaces the API's; unset keys take the defaults
// (request 30s, upstream_attempt equal to request).
func EffectiveTimeouts(api, op *UpstreamTimeouts) Timeouts {
	var req, att Duration
	for _, t := range []*UpstreamTimeouts{api, op} {
		if t == nil {
			continue
		}
		if t.Request.Set {
			req = t.Request
		}
		if t.UpstreamAttempt.Set {
			att = t.UpstreamAttempt
		}
	}
	out := Timeouts{Request: req.Or(DefaultRequestTimeout)}
	out.UpstreamAttempt = att.Or(out.Request)
	return out
}
