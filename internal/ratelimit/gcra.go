// Package ratelimit provides rate limiters that use the generic cell rate
// algorithm (GCRA), and a registry that keeps them across configuration
// reloads. The in-memory limiter bounds its memory: idle keys are dropped
// and the number of keys has a hard maximum.
package ratelimit

import (
	"context"
	"time"
)

// Params are the parameters of one limit: Burst requests at once, refilled
// at one request every Interval (the limit's period divided by its rate).
type Params struct {
	Interval time.Duration
	Burst    int64
}

// NewParams returns the parameters of "rate requests per period, at most
// burst at once" (burst 0: rate). The interval is period/rate, rounded
// down to the nanosecond.
func NewParams(rate int, period time.Duration, burst int) Params {
	if burst <= 0 {
		burst = rate
	}
	return Params{Interval: period / time.Duration(rate), Burst: int64(burst)}
}

// Window is the time an empty bucket takes to refill: Burst × Interval.
func (p Params) Window() time.Duration { return time.Duration(p.Burst) * p.Interval }

// Decision is the outcome of one request against one limit.
type Decision struct {
	Allowed bool
	// Remaining is how many more requests would be allowed right now.
	Remaining int64
	// RetryAfter is, when not allowed, how long until one request would be.
	RetryAfter time.Duration
	// Reset is how long until the bucket is full again (Remaining = Burst).
	Reset time.Duration
	// Unchecked says the limit was not checked: Redis failed and the
	// registry fails open (FailOpen). Allowed is true; the other fields
	// are zero and mean nothing.
	Unchecked bool
}

// Limiter decides whether one more request under a key is allowed, and
// counts it if so. Memory keeps the buckets in the process; Redis keeps
// them in a Redis server that several gateways share, with the same
// decisions.
type Limiter interface {
	Allow(ctx context.Context, key []byte, now time.Time) (Decision, error)
}

// decide applies GCRA to the theoretical arrival time tat (unix
// nanoseconds; 0 for a new key) at now. It returns the decision and the
// new tat, which the caller stores only when the request is allowed.
//
// The bucket is full when tat <= now. A request is allowed when, after
// adding one interval to max(tat, now), the bucket holds at most Burst
// intervals of debt: newTAT - now <= Burst × Interval.
func decide(p *Params, tat, now int64) (Decision, int64) {
	iv := int64(p.Interval)
	window := p.Burst * iv
	base := max(tat, now)
	next := base + iv
	debt := next - now
	if debt > window {
		return Decision{
			Allowed:    false,
			Remaining:  0,
			RetryAfter: time.Duration(debt - window),
			Reset:      time.Duration(base - now),
		}, tat
	}
	return Decision{
		Allowed:   true,
		Remaining: (window - debt) / iv,
		Reset:     time.Duration(debt),
	}, next
}
