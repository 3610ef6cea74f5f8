package gateway

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// StaticSource is the source name of the instances written in the
// configuration file; other sources (a service registry) set their own.
const StaticSource = "static"

// upstreamBinding is what a snapshot applies to a backend's pool when it
// is loaded: the pool's configuration and the static instances.
type upstreamBinding struct {
	pool   *upstream.Pool
	cfg    *upstream.Config
	static []upstream.InstanceSpec
}

// NewUpstreams returns the registry of backend pools, reporting to m
// (which may be nil).
func NewUpstreams(logger *slog.Logger, m *observe.Metrics) *upstream.Pools {
	if m == nil {
		return upstream.NewPools(logger, nil)
	}
	return upstream.NewPools(logger, func(backend string) upstream.Observer {
		return poolObserver{m.Backend(backend)}
	})
}

// poolObserver adapts observe's backend metrics to the pool's observer.
type poolObserver struct{ *observe.BackendMetrics }

func (o poolObserver) BreakerState(s upstream.BreakerState) { o.BackendMetrics.BreakerState(uint8(s)) }

// bindUpstream compiles the resilience settings of backend b and binds
// be to the backend's pool, which the runtime keeps across reloads.
// Nothing is applied to the pool until the snapshot is loaded.
func (c *compiler) bindUpstream(p string, b *config.Backend, be *backend, static []upstream.InstanceSpec) {
	cfg := c.poolConfig(p, b)
	cfg.Transport = be.transport
	if c.rt.Upstreams != nil {
		be.pool = c.rt.Upstreams.Get(b.Name)
	} else {
		be.pool = upstream.NewPool(b.Name, nil, nil) // offline: never served
	}
	if c.rt.Metrics != nil {
		be.failures = c.rt.Metrics.Backend(b.Name)
	}
	if c.snap.upstreams == nil {
		c.snap.upstreams = map[string]*upstreamBinding{}
	}
	c.snap.upstreams[b.Name] = &upstreamBinding{pool: be.pool, cfg: cfg, static: static}
}

func (c *compiler) poolConfig(p string, b *config.Backend) *upstream.Config {
	cfg := &upstream.Config{MaxConcurrent: int64(b.MaxConcurrentRequests)}
	if lb := b.LoadBalancing; lb != nil {
		alg, ok := upstream.ParseAlgorithm(lb.Algorithm)
		if !ok {
			c.r.Errorf(config.Field(p, "load_balancing.algorithm"), "unknown algorithm %q", lb.Algorithm)
		}
		cfg.Algorithm = alg
		if lb.HashKey != "" {
			k, err := config.ParseHashKey(lb.HashKey)
			if err != nil {
				c.r.Errorf(config.Field(p, "load_balancing.hash_key"), "%v", err)
			} else {
				cfg.Key = affinityKey(k)
			}
		}
	}
	if hc := b.HealthCheck; hc != nil {
		interval := hc.Interval.Or(config.DefaultHealthInterval)
		h := &upstream.HealthCheckConfig{
			Path:      hc.Path,
			Interval:  interval,
			Timeout:   hc.Timeout.Or(min(config.DefaultHealthTimeout, interval)),
			Healthy:   orInt(hc.HealthyThreshold, config.DefaultHealthyThreshold),
			Unhealthy: orInt(hc.UnhealthyThreshold, config.DefaultUnhealthyThreshold),
		}
		var err error
		h.StatusMin, h.StatusMax, err = config.ParseStatusRange(or(hc.ExpectedStatus, config.DefaultHealthExpectedStatus))
		if err != nil {
			c.r.Errorf(config.Field(p, "health_check.expected_status"), "%v", err)
		}
		cfg.HealthCheck = h
	}
	if od := b.OutlierDetection; od == nil || !od.Disabled {
		if od == nil {
			od = &config.OutlierDetection{}
		}
		cfg.Outlier = &upstream.OutlierConfig{
			Consecutive5xx:     orInt(od.Consecutive5xx, config.DefaultConsecutive5xx),
			ConsecutiveConnect: orInt(od.ConsecutiveConnectFailures, config.DefaultConsecutiveConnectFail),
			BaseEjection:       od.BaseEjection.Or(config.DefaultBaseEjection),
			MaxEjection:        od.MaxEjection.Or(config.DefaultMaxEjection),
			MaxEjectedPercent:  orInt(od.MaxEjectedPercent, config.DefaultMaxEjectedPercent),
		}
	}
	if cb := b.CircuitBreaker; cb != nil {
		ratio := cb.FailureRatio
		if ratio == 0 {
			ratio = config.DefaultBreakerFailureRatio
		}
		cfg.Breaker = &upstream.BreakerConfig{
			FailureRatio:     ratio,
			Window:           cb.Window.Or(config.DefaultBreakerWindow),
			MinimumRequests:  orInt(cb.MinimumRequests, config.DefaultBreakerMinimumRequests),
			OpenDuration:     cb.OpenDuration.Or(config.DefaultBreakerOpenDuration),
			HalfOpenRequests: orInt(cb.HalfOpenRequests, config.DefaultBreakerHalfOpenRequests),
		}
	}
	r := b.Retries
	if r == nil {
		r = &config.Retries{}
	}
	cfg.Retry = upstream.RetryConfig{
		MaxRetries:    config.DefaultMaxRetries,
		NonIdempotent: r.NonIdempotent,
		BackoffBase:   r.Backoff.Base.Or(config.DefaultRetryBackoffBase),
		BackoffMax:    r.Backoff.Max.Or(config.DefaultRetryBackoffMax),
		Budget: upstream.BudgetConfig{
			Percent:    orInt(r.Budget.Percent, config.DefaultRetryBudgetPercent),
			MinRetries: config.DefaultRetryBudgetMinRetries,
			Window:     r.Budget.Window.Or(config.DefaultRetryBudgetWindow),
		},
	}
	if r.MaxRetries != nil {
		cfg.Retry.MaxRetries = *r.MaxRetries
	}
	if r.Budget.MinRetries != nil {
		cfg.Retry.Budget.MinRetries = *r.Budget.MinRetries
	}
	for _, s := range r.OnStatus {
		cfg.Retry.OnStatus.Add(s)
	}
	return cfg
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

// affinityKey returns the function that reads a consistent-hash key from
// a request. It runs on the request path: no allocation for headers,
// cookies, client IPs and subjects.
func affinityKey(k config.HashKey) func(*http.Request) (uint64, bool) {
	switch k.Kind {
	case config.HashKeyHeader:
		name := http.CanonicalHeaderKey(k.Name)
		return func(r *http.Request) (uint64, bool) {
			if v := r.Header[name]; len(v) > 0 && v[0] != "" {
				return upstream.HashString(v[0]), true
			}
			return 0, false
		}
	case config.HashKeyCookie:
		name := k.Name
		return func(r *http.Request) (uint64, bool) {
			if v, ok := cookieValue(r.Header["Cookie"], name); ok {
				return upstream.HashString(v), true
			}
			return 0, false
		}
	case config.HashKeyClientIP:
		return func(r *http.Request) (uint64, bool) {
			x := policy.ExchangeFrom(r.Context())
			if x == nil || !x.ClientIP.IsValid() {
				return 0, false
			}
			b := x.ClientIP.As16()
			return upstream.HashBytes(b[:]), true
		}
	case config.HashKeySubject:
		return func(r *http.Request) (uint64, bool) {
			if p := policy.PrincipalFrom(r.Context()); p != nil && p.Subject != "" {
				return upstream.HashString(p.Subject), true
			}
			return 0, false
		}
	case config.HashKeyClaim:
		path := k.Name
		return func(r *http.Request) (uint64, bool) {
			p := policy.PrincipalFrom(r.Context())
			if p == nil {
				return 0, false
			}
			if vs := identity.ClaimValues(p.Claims, path); len(vs) > 0 {
				return upstream.HashString(strings.Join(vs, " ")), true
			}
			return 0, false
		}
	}
	return nil
}

// cookieValue finds a cookie in Cookie header values without allocating.
// The first cookie with the name wins; an empty value counts as absent.
func cookieValue(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimLeft(part, " \t")
			k, v, ok := strings.Cut(part, "=")
			if !ok || strings.TrimRight(k, " \t") != name {
				continue
			}
			v = strings.Trim(v, " \t")
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, v != ""
		}
	}
	return "", false
}

// applyUpstreams gives each backend's pool the settings and static
// instances of snapshot s. It runs after s compiled and before it is
// swapped in, so that the new snapshot's pools are ready when it serves.
// State (health, ejections, breaker, budgets, in-flight counts) is kept.
func (g *Gateway) applyUpstreams(s *Snapshot) {
	if g.rt.Upstreams == nil {
		return
	}
	for name, b := range s.upstreams {
		b.pool.Configure(b.cfg)
		if err := b.pool.SetInstances(StaticSource, b.static); err != nil {
			g.rt.Logger.Error("setting backend instances", "backend", name, "error", err)
		}
	}
}

// retainUpstreams closes the pools of backends that keep no longer has.
func (g *Gateway) retainUpstreams(keep *Snapshot) {
	if g.rt.Upstreams == nil {
		return
	}
	names := map[string]bool{}
	if keep != nil {
		for name := range keep.upstreams {
			names[name] = true
		}
	}
	g.rt.Upstreams.Retain(names)
}

// proxySet builds the proxies of one API: one per distinct effective
// timeouts of its operations.
type proxySet struct {
	c   *compiler
	a   *config.API
	api *API
	be  *backend
	m   map[config.Timeouts]policy.Handler
}

func (c *compiler) proxies(a *config.API, api *API, be *backend) *proxySet {
	return &proxySet{c: c, a: a, api: api, be: be, m: map[config.Timeouts]policy.Handler{}}
}

// For returns the proxy of operation o (nil: the API's catch-all).
func (ps *proxySet) For(o *config.Operation) policy.Handler {
	var ot *config.UpstreamTimeouts
	if o != nil {
		ot = o.Timeouts
	}
	t := config.EffectiveTimeouts(ps.a.Timeouts, ot)
	if h, ok := ps.m[t]; ok {
		return h
	}
	h := ps.c.proxy(ps.api, ps.be, t)
	ps.m[t] = h
	return h
}

// recordUpstream notes the instance and attempts of an exchange in the
// access-log record.
func recordUpstream(r *http.Request, instance string, attempts int) {
	if x := exchangeOf(r.Context()); x != nil && x.Record != nil {
		x.Record.Upstream = instance
		x.Record.Attempts = attempts
	}
}
