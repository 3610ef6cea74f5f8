// Package upstream holds what the gateway knows about backends at run
// time: their instances and their health, how to choose one, the circuit
// breaker, retry budget and concurrency limit of each backend, the
// retrying transport that applies them, and the HTTP transports that carry
// requests. Everything here lives in registries keyed by stable IDs
// (backend name, instance scheme://host:port), so a configuration reload
// keeps health, ejections, breaker state, in-flight counts, retry budgets
// and warm connections.
package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Instance is the identity of one backend instance.
type Instance struct {
	// ID is stable across reloads: the scheme and host:port.
	ID     string
	Scheme string
	Host   string // host:port
	URL    *url.URL
}

// NewInstance parses an instance base URL (scheme://host[:port]).
func NewInstance(raw string) (*Instance, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) base URL", raw)
	}
	host := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			host += ":443"
		} else {
			host += ":80"
		}
	}
	return &Instance{ID: u.Scheme + "://" + host, Scheme: u.Scheme, Host: host, URL: u}, nil
}

// InstanceSpec is an instance as a source (the configuration file, the
// service registry) announces it.
type InstanceSpec struct {
	URL    string // scheme://host[:port]
	Weight int    // relative share; 0 means 1
}

// Endpoint is an instance of a pool with its run-time state. The
// exported methods are safe for concurrent use.
type Endpoint struct {
	Instance

	weight   atomic.Int32
	inFlight atomic.Int64
	// Passive health: consecutive failures of real traffic.
	consec5xx     atomic.Int32
	consecConnect atomic.Int32
	draining      atomic.Bool
	// lastErr is the last failure seen on the instance (traffic or health
	// check), for operators; written only when something fails.
	lastErr atomic.Pointer[lastError]

	// Guarded by the pool's mu.
	sources       map[string]int // source → weight it announced
	activeHealthy bool
	checkOK       int
	checkFail     int
	stopCheck     context.CancelFunc
	ejected       bool
	ejectedUntil  time.Time
	ejections     int
	lastReturn    time.Time
	ejectGen      uint64
	ejectTimer    *time.Timer
	reported      int8 // last eligibility given to the observer: -1 unknown, 0, 1
}

// lastError is a failure noted on an endpoint.
type lastError struct {
	what string
	at   time.Time
}

func (e *Endpoint) noteError(what string) {
	e.lastErr.Store(&lastError{what: what, at: time.Now()})
}

// Weight returns the endpoint's weight (at least 1).
func (e *Endpoint) Weight() int { return int(e.weight.Load()) }

// InFlight returns the number of requests in flight to the endpoint.
func (e *Endpoint) InFlight() int64 { return e.inFlight.Load() }

func (e *Endpoint) eligible() bool { return e.activeHealthy && !e.ejected }

// Config is how a pool balances, checks, ejects, breaks and retries. The
// gateway compiles it from a backend's configuration and applies it after
// a snapshot swap; a reload that keeps a backend keeps the pool's state.
type Config struct {
	Algorithm Algorithm
	// Key returns the affinity key hash of a request for consistent
	// hashing; ok is false when the request has no key.
	Key func(r *http.Request) (hash uint64, ok bool)
	// HealthCheck is the active check; nil means none.
	HealthCheck *HealthCheckConfig
	// Outlier is passive ejection; nil means off.
	Outlier *OutlierConfig
	// Breaker is the circuit breaker; nil means none.
	Breaker *BreakerConfig
	// MaxConcurrent bounds the requests in flight to the backend; 0 means
	// no bound.
	MaxConcurrent int64
	Retry         RetryConfig
	// Transport carries the health checks (the backend's transport, so
	// that TLS settings are the same as for traffic).
	Transport http.RoundTripper
}

// Observer is told what a pool does, for metrics. Calls are made with
// the pool's lock held or on the request path: they must be quick and
// must not call back into the pool.
type Observer interface {
	// InstanceHealth reports whether an instance may get traffic.
	InstanceHealth(instance string, eligible bool)
	// InstanceRemoved reports that an instance left the pool.
	InstanceRemoved(instance string)
	// Ejected reports an outlier ejection.
	Ejected(instance string)
	// BreakerState reports the breaker's new state.
	BreakerState(state BreakerState)
	// Attempt reports one upstream attempt and its outcome.
	Attempt(outcome string)
	// Retry reports a retry decision: sent, budget_exhausted, no_time.
	Retry(outcome string)
}

type nopObserver struct{}

func (nopObserver) InstanceHealth(string, bool) {}
func (nopObserver) InstanceRemoved(string)      {}
func (nopObserver) Ejected(string)              {}
func (nopObserver) BreakerState(BreakerState)   {}
func (nopObserver) Attempt(string)              {}
func (nopObserver) Retry(string)                {}

// Pool is the set of instances of one backend, their health, and the
// choice among them. Its membership can change at run time: each source
// (the configuration, a registry) sets its own instances, and the pool is
// their union. A removed instance drains: it gets no new requests and
// those in flight finish.
type Pool struct {
	name   string
	logger *slog.Logger
	obs    Observer

	cfg     atomic.Pointer[Config]
	view    atomic.Pointer[view]
	rr      atomic.Uint64
	active  atomic.Int64 // requests in flight, for the concurrency limit
	breaker *Breaker
	budget  *Budget
	noInst  *Error

	mu       sync.Mutex
	members  map[string]*Endpoint
	draining map[string]*Endpoint
	hc       *HealthCheckConfig // the checks that are running
	ctx      context.Context    // cancelled by Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closed   bool

	fallbackOnce sync.Once
	fallback     *http.Transport
}

type view struct {
	eligible []*Endpoint
	bal      Balancer
}

// NewPool returns an empty pool with the default configuration (round
// robin, no checks, no retries). logger and obs may be nil.
func NewPool(name string, logger *slog.Logger, obs Observer) *Pool {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = nopObserver{}
	}
	p := &Pool{
		name:     name,
		logger:   logger.With("backend", name),
		obs:      obs,
		members:  map[string]*Endpoint{},
		draining: map[string]*Endpoint{},
		noInst:   &Error{Kind: ErrNoHealthyInstance, Backend: name},
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.breaker = newBreaker(func(s BreakerState) { p.obs.BreakerState(s) })
	p.obs.BreakerState(BreakerClosed)
	p.budget = &Budget{}
	p.cfg.Store(&Config{})
	p.view.Store(&view{bal: NewBalancer(RoundRobin, nil, &p.rr)})
	return p
}

// Name returns the backend name.
func (p *Pool) Name() string { return p.name }

// Config returns the pool's configuration. It must not be modified.
func (p *Pool) Config() *Config { return p.cfg.Load() }

// Breaker returns the pool's circuit breaker.
func (p *Pool) Breaker() *Breaker { return p.breaker }

// Configure applies a new configuration and keeps the pool's state:
// health, ejections, breaker state, in-flight counts and budget. Health
// checks restart only if their settings changed.
func (p *Pool) Configure(c *Config) {
	cp := *c
	if cp.Retry.Budget.Window <= 0 {
		cp.Retry.Budget.Window = defaultBudgetWindow
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.breaker.configure(cp.Breaker)
	p.budget.configure(cp.Retry.Budget)
	p.cfg.Store(&cp)
	if !sameHealthCheck(p.hc, cp.HealthCheck) {
		p.hc = cp.HealthCheck
		for _, e := range p.members {
			p.stopCheckLocked(e)
			e.checkOK, e.checkFail = 0, 0
			if p.hc == nil {
				e.activeHealthy = true
			} else {
				p.startCheckLocked(e)
			}
		}
	}
	p.rebuildLocked()
}

func sameHealthCheck(a, b *HealthCheckConfig) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// SetInstances makes specs the instances that source announces, keeping
// the state of those already known (under any source). Instances that no
// source announces any more drain. It reports the first invalid URL and
// changes nothing in that case.
func (p *Pool) SetInstances(source string, specs []InstanceSpec) error {
	parsed := make([]*Instance, len(specs))
	for i, s := range specs {
		in, err := NewInstance(s.URL)
		if err != nil {
			return err
		}
		if s.Weight < 0 {
			return fmt.Errorf("instance %s: negative weight", in.ID)
		}
		parsed[i] = in
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("backend %s: pool is closed", p.name)
	}
	want := make(map[string]int, len(specs))
	for i, in := range parsed {
		w := max(specs[i].Weight, 1)
		want[in.ID] = w
		e := p.members[in.ID]
		if e == nil {
			if e = p.draining[in.ID]; e != nil {
				// Back before it finished draining: keep its state.
				delete(p.draining, in.ID)
				e.draining.Store(false)
				if e.ejected {
					p.scheduleReturnLocked(e, max(time.Until(e.ejectedUntil), 0))
				}
			} else {
				e = &Endpoint{Instance: *in, sources: map[string]int{}, activeHealthy: true, reported: -1}
				p.logger.Info("instance added", "instance", in.ID, "source", source)
			}
			p.members[in.ID] = e
			if p.hc != nil {
				p.startCheckLocked(e)
			}
		}
		e.sources[source] = w
	}
	for id, e := range p.members {
		if _, ok := want[id]; ok {
			continue
		}
		if _, had := e.sources[source]; !had {
			continue
		}
		delete(e.sources, source)
		if len(e.sources) == 0 {
			p.removeLocked(e, source)
		}
	}
	for _, e := range p.members {
		w := 0
		for _, sw := range e.sources {
			w = max(w, sw) // the largest announced weight wins
		}
		e.weight.Store(int32(w))
	}
	p.rebuildLocked()
	return nil
}

// removeLocked takes e out of rotation and lets its requests finish.
func (p *Pool) removeLocked(e *Endpoint, source string) {
	delete(p.members, e.ID)
	p.stopCheckLocked(e)
	if e.ejectTimer != nil {
		e.ejectTimer.Stop()
	}
	e.draining.Store(true)
	p.obs.InstanceRemoved(e.ID)
	e.reported = -1
	if e.inFlight.Load() > 0 {
		p.draining[e.ID] = e
		p.logger.Info("instance removed; draining", "instance", e.ID, "source", source, "in_flight", e.inFlight.Load())
		return
	}
	p.logger.Info("instance removed", "instance", e.ID, "source", source)
}

// release ends one request to e.
func (p *Pool) release(e *Endpoint) {
	if e.inFlight.Add(-1) == 0 && e.draining.Load() {
		p.mu.Lock()
		if p.draining[e.ID] == e && e.inFlight.Load() == 0 {
			delete(p.draining, e.ID)
			p.logger.Info("instance drained", "instance", e.ID)
		}
		p.mu.Unlock()
	}
}

// rebuildLocked publishes the eligible endpoints and a balancer over them.
func (p *Pool) rebuildLocked() {
	eligible := make([]*Endpoint, 0, len(p.members))
	for _, e := range p.members {
		ok := e.eligible()
		if ok {
			eligible = append(eligible, e)
		}
		if r := boolInt8(ok); e.reported != r {
			e.reported = r
			p.obs.InstanceHealth(e.ID, ok)
		}
	}
	sort.Slice(eligible, func(i, j int) bool { return eligible[i].ID < eligible[j].ID })
	p.view.Store(&view{eligible: eligible, bal: NewBalancer(p.cfg.Load().Algorithm, eligible, &p.rr)})
}

func boolInt8(b bool) int8 {
	if b {
		return 1
	}
	return 0
}

// Eligible returns the endpoints that may get traffic now.
func (p *Pool) Eligible() []*Endpoint { return p.view.Load().eligible }

// Pick returns an eligible endpoint other than those in avoid (or, if
// every eligible endpoint is in avoid, any eligible one), or nil when no
// endpoint is eligible.
func (p *Pool) Pick(key uint64, hasKey bool, avoid []*Endpoint) *Endpoint {
	v := p.view.Load()
	if e := v.bal.Pick(key, hasKey, avoid); e != nil || len(avoid) == 0 {
		return e
	}
	return v.bal.Pick(key, hasKey, nil)
}

// InstanceStatus describes an instance for the admin API, the dashboard
// and tests.
type InstanceStatus struct {
	ID           string
	Weight       int
	Sources      []string
	Healthy      bool // passes active checks (true without checks)
	Ejected      bool
	EjectedUntil time.Time
	Ejections    int
	InFlight     int64
	Draining     bool
	// LastError says what last failed on the instance, and when.
	LastError   string
	LastErrorAt time.Time
}

// Eligible reports whether the instance may get new requests.
func (s InstanceStatus) Eligible() bool { return s.Healthy && !s.Ejected && !s.Draining }

// Instances returns the status of every instance, draining ones
// included, sorted by ID.
func (p *Pool) Instances() []InstanceStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]InstanceStatus, 0, len(p.members)+len(p.draining))
	add := func(e *Endpoint, draining bool) {
		s := InstanceStatus{
			ID: e.ID, Weight: e.Weight(), Healthy: e.activeHealthy, Ejected: e.ejected,
			Ejections: e.ejections, InFlight: e.inFlight.Load(), Draining: draining,
		}
		if e.ejected {
			s.EjectedUntil = e.ejectedUntil
		}
		if le := e.lastErr.Load(); le != nil {
			s.LastError, s.LastErrorAt = le.what, le.at
		}
		for src := range e.sources {
			s.Sources = append(s.Sources, src)
		}
		slices.Sort(s.Sources)
		out = append(out, s)
	}
	for _, e := range p.members {
		add(e, false)
	}
	for _, e := range p.draining {
		add(e, true)
	}
	slices.SortFunc(out, func(a, b InstanceStatus) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Close stops the pool's health checks and timers and waits for the
// checks to return. Requests in flight finish.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.cancel()
	for _, e := range p.members {
		p.stopCheckLocked(e)
		if e.ejectTimer != nil {
			e.ejectTimer.Stop()
		}
		p.obs.InstanceRemoved(e.ID)
	}
	p.mu.Unlock()
	p.wg.Wait()
	if p.fallback != nil {
		p.fallback.CloseIdleConnections()
	}
}

// Pools is the registry of pools, keyed by backend name. It outlives
// configuration snapshots.
type Pools struct {
	logger  *slog.Logger
	observe func(backend string) Observer

	mu sync.Mutex
	m  map[string]*Pool
}

// NewPools returns an empty registry. observe, if not nil, gives each new
// pool its observer.
func NewPools(logger *slog.Logger, observe func(backend string) Observer) *Pools {
	return &Pools{logger: logger, observe: observe, m: map[string]*Pool{}}
}

// Get returns the pool of backend, creating an empty one if needed. A new
// pool runs nothing until it is configured and given instances.
func (ps *Pools) Get(backend string) *Pool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.m[backend]; ok {
		return p
	}
	var obs Observer
	if ps.observe != nil {
		obs = ps.observe(backend)
	}
	p := NewPool(backend, ps.logger, obs)
	ps.m[backend] = p
	return p
}

// Lookup returns the pool of backend, if there is one.
func (ps *Pools) Lookup(backend string) (*Pool, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p, ok := ps.m[backend]
	return p, ok
}

// Retain closes and forgets every pool whose backend is not in keep.
func (ps *Pools) Retain(keep map[string]bool) {
	ps.mu.Lock()
	var closing []*Pool
	for name, p := range ps.m {
		if !keep[name] {
			closing = append(closing, p)
			delete(ps.m, name)
		}
	}
	ps.mu.Unlock()
	for _, p := range closing {
		p.Close()
	}
}

// Close closes every pool.
func (ps *Pools) Close() { ps.Retain(nil) }
