package upstream

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// HealthCheckConfig is an active health check: a GET of Path on every
// instance each Interval.
type HealthCheckConfig struct {
	Path     string
	Interval time.Duration
	Timeout  time.Duration
	// Healthy consecutive passes make an unhealthy instance healthy;
	// Unhealthy consecutive failures make a healthy one unhealthy.
	Healthy   int
	Unhealthy int
	// StatusMin and StatusMax bound the statuses that pass.
	StatusMin, StatusMax int
}

// OutlierConfig is passive ejection: an instance whose real traffic fails
// Consecutive5xx times in a row (5xx responses or attempt timeouts), or
// ConsecutiveConnect times in a row (connect failures), is ejected for
// BaseEjection × 2^(n-1) (the n-th ejection), at most MaxEjection, unless
// that would eject more than MaxEjectedPercent of the instances.
type OutlierConfig struct {
	Consecutive5xx     int
	ConsecutiveConnect int
	BaseEjection       time.Duration
	MaxEjection        time.Duration
	MaxEjectedPercent  int
}

// healthCheckUserAgent identifies the gateway's checks in backend logs.
const healthCheckUserAgent = "gatehouse-health-check"

// maxCheckBody is how much of a check's response body is read (so the
// connection can be reused); the rest is discarded with the connection.
const maxCheckBody = 4 << 10

func (p *Pool) startCheckLocked(e *Endpoint) {
	ctx, cancel := context.WithCancel(p.ctx)
	e.stopCheck = cancel
	hc := *p.hc
	target := e.URL.Scheme + "://" + e.URL.Host + hc.Path
	p.wg.Go(func() { p.checkLoop(ctx, e, hc, target) })
}

func (p *Pool) stopCheckLocked(e *Endpoint) {
	if e.stopCheck != nil {
		e.stopCheck()
		e.stopCheck = nil
	}
}

// checkLoop checks e at once, then every interval (±10% so that the checks
// of many instances do not fall in step), until ctx is done.
func (p *Pool) checkLoop(ctx context.Context, e *Endpoint, hc HealthCheckConfig, target string) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok := p.probe(ctx, hc, target)
		if ctx.Err() != nil {
			return
		}
		p.checked(e, ok, &hc)
		jitter := time.Duration(0)
		if span := int64(hc.Interval / 5); span > 0 {
			jitter = time.Duration(rand.Int64N(span)) - hc.Interval/10
		}
		t.Reset(hc.Interval + jitter)
	}
}

// probe sends one check and reports whether it passed.
func (p *Pool) probe(ctx context.Context, hc HealthCheckConfig, target string) bool {
	rt := p.cfg.Load().Transport
	if rt == nil {
		rt = p.checkTransport()
	}
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", healthCheckUserAgent)
	res, err := rt.RoundTrip(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxCheckBody))
	res.Body.Close()
	return res.StatusCode >= hc.StatusMin && res.StatusCode <= hc.StatusMax
}

// checkTransport returns the pool's own transport for checks, used when
// the configuration gives none (tests, tools).
func (p *Pool) checkTransport() http.RoundTripper {
	p.fallbackOnce.Do(func() {
		p.fallback = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second}
	})
	return p.fallback
}

// checked records the result of a check of e.
func (p *Pool) checked(e *Endpoint, ok bool, hc *HealthCheckConfig) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.members[e.ID] != e || !sameHealthCheck(p.hc, hc) {
		return // removed, or the checks changed meanwhile
	}
	if ok {
		e.checkFail = 0
		e.checkOK++
		if !e.activeHealthy && e.checkOK >= hc.Healthy {
			e.activeHealthy = true
			// A passing active check also ends an ejection: the instance
			// has proved itself.
			p.unejectLocked(e)
			p.logger.Info("instance healthy", "instance", e.ID)
			p.rebuildLocked()
		}
		return
	}
	e.checkOK = 0
	e.checkFail++
	e.noteError("health check failed")
	if e.activeHealthy && e.checkFail >= hc.Unhealthy {
		e.activeHealthy = false
		p.logger.Warn("instance unhealthy", "instance", e.ID, "failed_checks", e.checkFail)
		p.rebuildLocked()
	}
}

// Outcome is the result of one upstream attempt, as health and breakers
// see it.
type Outcome uint8

// Outcomes.
const (
	// OutcomeSuccess is a response with a status below 500.
	OutcomeSuccess Outcome = iota
	// Outcome5xx is a response with a status of 500 or more.
	Outcome5xx
	// OutcomeTimeout is an attempt that got no response headers in time.
	OutcomeTimeout
	// OutcomeConnect is a failure to connect, or a connection closed or
	// reset before any byte of a response.
	OutcomeConnect
	// OutcomeError is any other transport failure (TLS, protocol).
	OutcomeError
	// OutcomeCanceled is an attempt the client abandoned, or whose
	// request body failed to read: it says nothing about the backend.
	OutcomeCanceled
	// OutcomeBodyTimeout is an attempt whose deadline passed while the
	// client's request body was still awaited: it says nothing about the
	// backend either.
	OutcomeBodyTimeout
)

var outcomeNames = [...]string{"response", "status_5xx", "timeout", "connect_error", "error", "canceled", "body_timeout"}

// String returns the outcome's metric label.
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Failure reports whether o counts against the backend.
func (o Outcome) Failure() bool {
	return o != OutcomeSuccess && o != OutcomeCanceled && o != OutcomeBodyTimeout
}

// Report records the outcome of an attempt on e for passive ejection.
func (p *Pool) Report(e *Endpoint, o Outcome) {
	od := p.cfg.Load().Outlier
	if o.Failure() {
		e.noteError("request: " + o.String())
	}
	switch o {
	case OutcomeSuccess:
		if e.consec5xx.Load() != 0 {
			e.consec5xx.Store(0)
		}
		if e.consecConnect.Load() != 0 {
			e.consecConnect.Store(0)
		}
	case Outcome5xx, OutcomeTimeout:
		if e.consecConnect.Load() != 0 {
			e.consecConnect.Store(0)
		}
		if n := e.consec5xx.Add(1); od != nil && int(n) >= od.Consecutive5xx {
			p.eject(e, od, "consecutive_5xx")
		}
	case OutcomeConnect, OutcomeError:
		if n := e.consecConnect.Add(1); od != nil && int(n) >= od.ConsecutiveConnect {
			p.eject(e, od, "consecutive_connect_failures")
		}
	}
}

// eject takes e out of rotation for a growing time, unless too many
// instances are ejected already.
func (p *Pool) eject(e *Endpoint, od *OutlierConfig, why string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.consec5xx.Store(0)
	e.consecConnect.Store(0)
	if p.closed || e.ejected || p.members[e.ID] != e {
		return
	}
	ejected := 0
	for _, m := range p.members {
		if m.ejected {
			ejected++
		}
	}
	if (ejected+1)*100 > od.MaxEjectedPercent*len(p.members) {
		p.logger.Warn("instance not ejected: too many instances are ejected already",
			"instance", e.ID, "reason", why, "ejected", ejected, "max_ejected_percent", od.MaxEjectedPercent)
		return
	}
	now := time.Now()
	// The count of past ejections fades by one for each base_ejection spent
	// back in rotation, so an instance that failed once long ago starts
	// again from base_ejection.
	if e.ejections > 0 && !e.lastReturn.IsZero() && od.BaseEjection > 0 {
		e.ejections = max(0, e.ejections-int(now.Sub(e.lastReturn)/od.BaseEjection))
	}
	e.ejections++
	d := EjectionDuration(od.BaseEjection, od.MaxEjection, e.ejections)
	e.ejected = true
	e.ejectedUntil = now.Add(d)
	p.scheduleReturnLocked(e, d)
	p.obs.Ejected(e.ID)
	p.logger.Warn("instance ejected", "instance", e.ID, "reason", why, "for", d.String(), "ejections", e.ejections)
	p.rebuildLocked()
}

// scheduleReturnLocked ends e's ejection after d.
func (p *Pool) scheduleReturnLocked(e *Endpoint, d time.Duration) {
	e.ejectGen++
	gen := e.ejectGen
	e.ejectTimer = time.AfterFunc(d, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if e.ejectGen == gen && e.ejected && p.members[e.ID] == e {
			p.unejectLocked(e)
			p.logger.Info("instance back from ejection", "instance", e.ID)
			p.rebuildLocked()
		}
	})
}

func (p *Pool) unejectLocked(e *Endpoint) {
	if !e.ejected {
		return
	}
	e.ejected = false
	e.ejectGen++
	e.lastReturn = time.Now()
	if e.ejectTimer != nil {
		e.ejectTimer.Stop()
		e.ejectTimer = nil
	}
}

// EjectionDuration is base × 2^(n-1), capped at maxD.
func EjectionDuration(base, maxD time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxD; i++ {
		d *= 2
	}
	return min(d, maxD)
}
