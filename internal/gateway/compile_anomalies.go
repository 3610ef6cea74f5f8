package gateway

import (
	"github.com/gatehouse-dev/gatehouse/internal/anomaly"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

// anomalies compiles the anomalies section into the snapshot's policy
// (nil when detection is off, or when the runtime has no detector: the
// request path then does no detection work at all).
func (c *compiler) anomalies() {
	a := &c.cfg.Anomalies
	if !a.AnyOn() || c.rt.Anomalies == nil {
		return
	}
	action := func(s string) bool { return s == "throttle" }
	p := &anomaly.Policy{
		Window:             a.Window.Or(config.DefaultAnomalyWindow),
		MaxEventsPerWindow: a.MaxEventsPerWindow,
		Throttle: anomaly.Throttle{
			Rate:     a.Throttle.Rate,
			Period:   a.Throttle.Period.Or(config.DefaultAnomalyThrottlePeriod),
			Duration: a.Throttle.Duration.Or(config.DefaultAnomalyThrottleFor),
		},
	}
	if p.MaxEventsPerWindow == 0 {
		p.MaxEventsPerWindow = config.DefaultAnomalyMaxEvents
	}
	if p.Throttle.Rate == 0 {
		p.Throttle.Rate = config.DefaultAnomalyThrottleRate
	}
	if r := &a.RateSpike; !r.Disabled {
		p.RateSpike = &anomaly.RateSpike{
			Factor:      r.Factor,
			MinRequests: r.MinRequests,
			Baseline:    r.Baseline.Or(config.DefaultAnomalySpikeBaseline),
			Warmup:      r.Warmup.Or(config.DefaultAnomalySpikeWarmup),
			Throttle:    action(r.Action),
		}
		if p.RateSpike.Factor == 0 {
			p.RateSpike.Factor = config.DefaultAnomalySpikeFactor
		}
		if p.RateSpike.MinRequests == 0 {
			p.RateSpike.MinRequests = config.DefaultAnomalySpikeMin
		}
	}
	threshold := func(t *config.AnomalyThreshold, def int) *anomaly.Threshold {
		if t.Disabled {
			return nil
		}
		n := t.Threshold
		if n == 0 {
			n = def
		}
		return &anomaly.Threshold{Count: n, Throttle: action(t.Action)}
	}
	p.AuthFails = threshold(&a.AuthFailures, config.DefaultAnomalyAuthFailures)
	p.Enumeration = threshold(&a.Enumeration, config.DefaultAnomalyEnumeration)
	if f := &a.FirstAccess; !f.Disabled {
		p.FirstAccess = &anomaly.FirstAccess{
			Remember: f.Remember.Or(config.DefaultAnomalyRemember),
			Learning: f.Learning.Or(config.DefaultAnomalyLearning),
		}
	}
	c.snap.anomalies = p
}

// anomalyThrottles returns the throttle steps of an operation: one by
// the client address before authentication, one by the verified caller
// after it (nil when no detector of the snapshot throttles).
func (c *compiler) anomalyThrottles() (byAddress, byCaller policy.Step) {
	p := c.snap.anomalies
	if !p.Throttles() || c.rt.Anomalies == nil {
		return nil, nil
	}
	var observe func()
	return policy.Throttle(c.rt.Anomalies, false, observe), policy.Throttle(c.rt.Anomalies, true, observe)
}

// sensitive reports whether an operation is marked sensitive.
func sensitive(a *config.API, o *config.Operation) bool {
	if o != nil && o.Sensitive != nil {
		return *o.Sensitive
	}
	return a.Sensitive
}

// AnomaliesEnabled reports whether the snapshot detects anomalies.
func (s *Snapshot) AnomaliesEnabled() bool { return s.anomalies != nil }
