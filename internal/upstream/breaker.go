package upstream

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// BreakerConfig configures a circuit breaker.
type BreakerConfig struct {
	// FailureRatio of failed requests in the window opens the breaker,
	// once the window holds MinimumRequests.
	FailureRatio    float64
	Window          time.Duration
	MinimumRequests int
	// OpenDuration is how long the breaker refuses before probing.
	OpenDuration time.Duration
	// HalfOpenRequests probes are let through when half-open; all must
	// succeed to close the breaker.
	HalfOpenRequests int
}

// BreakerState is the state of a circuit breaker.
type BreakerState uint8

// Breaker states. The values are those of the state gauge.
const (
	BreakerClosed BreakerState = iota
	BreakerOpen
	BreakerHalfOpen
)

// String returns closed, open or half_open.
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half_open"
	}
	return "unknown"
}

// breakerBuckets is the resolution of the sliding window.
const breakerBuckets = 10

// Breaker is a circuit breaker over one backend's requests:
//
//   - closed: requests pass; each outcome lands in a sliding window of
//     breakerBuckets buckets. When the window holds at least
//     MinimumRequests and failed/total ≥ FailureRatio, the breaker opens.
//   - open: requests are refused at once (503, Retry-After) until
//     OpenDuration has passed; then the next request finds it half-open.
//   - half-open: at most HalfOpenRequests probes pass (others are
//     refused); one failed probe opens it again for OpenDuration; when all
//     HalfOpenRequests probes succeed it closes with an empty window.
//
// A request's outcome counts only in the state (and period) it was let
// through in. Time comes from time.Now, so tests drive it with
// testing/synctest. With no configuration it lets everything through.
type Breaker struct {
	onState func(BreakerState)

	// on is cfg != nil, read without mu: a backend without a breaker
	// (the default) takes no lock per request.
	on        atomic.Bool
	mu        sync.Mutex
	cfg       *BreakerConfig
	state     BreakerState
	gen       uint64 // changes with every state change
	openUntil time.Time
	probes    int // half-open: let through and not yet finished or succeeded
	probeOK   int
	buckets   [breakerBuckets]breakerBucket
}

// noTicket is the ticket of a request let through by a breaker without
// configuration: its outcome is not counted (gen never reaches it).
const noTicket = math.MaxUint64

type breakerBucket struct {
	epoch         int64
	total, failed int
}

func newBreaker(onState func(BreakerState)) *Breaker {
	return &Breaker{onState: onState}
}

// NewBreaker returns a breaker with configuration c (nil: always closed).
func NewBreaker(c *BreakerConfig) *Breaker {
	b := newBreaker(func(BreakerState) {})
	b.configure(c)
	return b
}

// configure changes the settings and keeps the state: an open breaker
// stays open until its time is up. Removing the configuration closes it.
func (b *Breaker) configure(c *BreakerConfig) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.on.Store(c != nil)
	if c == nil {
		b.cfg = nil
		if b.state != BreakerClosed {
			b.setLocked(BreakerClosed)
		}
		return
	}
	cp := *c
	if b.cfg != nil && b.cfg.Window != cp.Window {
		b.buckets = [breakerBuckets]breakerBucket{}
	}
	b.cfg = &cp
}

// State returns the current state (an open breaker whose time is up
// reports half-open).
func (b *Breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerOpen && !time.Now().Before(b.openUntil) {
		return BreakerHalfOpen
	}
	return b.state
}

// Allow asks to send a request. When ok, the caller must later call Done
// (or Abandon) with the returned ticket. When refused, retryAfter says
// when to try again.
func (b *Breaker) Allow() (ticket uint64, retryAfter time.Duration, ok bool) {
	if !b.on.Load() {
		return noTicket, 0, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg == nil {
		return b.gen, 0, true
	}
	now := time.Now()
	switch b.state {
	case BreakerOpen:
		if now.Before(b.openUntil) {
			return 0, b.openUntil.Sub(now), false
		}
		b.setLocked(BreakerHalfOpen)
		fallthrough
	case BreakerHalfOpen:
		if b.probes+b.probeOK >= b.cfg.HalfOpenRequests {
			// Every probe slot is taken; wait for their verdict.
			return 0, time.Second, false
		}
		b.probes++
	}
	return b.gen, 0, true
}

// Done reports the outcome of a request let through with ticket.
func (b *Breaker) Done(ticket uint64, failed bool) {
	if ticket == noTicket {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg == nil || ticket != b.gen {
		return // let through in an earlier state: no longer relevant
	}
	switch b.state {
	case BreakerClosed:
		now := time.Now()
		bk := b.bucketLocked(now)
		bk.total++
		if failed {
			bk.failed++
		}
		total, nfailed := b.sumLocked(now)
		if failed && total >= b.cfg.MinimumRequests && float64(nfailed) >= b.cfg.FailureRatio*float64(total) {
			b.openLocked()
		}
	case BreakerHalfOpen:
		b.probes--
		if failed {
			b.openLocked()
			return
		}
		b.probeOK++
		if b.probeOK >= b.cfg.HalfOpenRequests {
			b.buckets = [breakerBuckets]breakerBucket{}
			b.setLocked(BreakerClosed)
		}
	}
}

// Abandon releases a ticket whose request ended without a verdict on the
// backend (the client went away).
func (b *Breaker) Abandon(ticket uint64) {
	if ticket == noTicket {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg != nil && ticket == b.gen && b.state == BreakerHalfOpen {
		b.probes--
	}
}

func (b *Breaker) openLocked() {
	b.openUntil = time.Now().Add(b.cfg.OpenDuration)
	b.setLocked(BreakerOpen)
}

func (b *Breaker) setLocked(s BreakerState) {
	b.state = s
	b.gen++
	b.probes, b.probeOK = 0, 0
	b.onState(s)
}

func (b *Breaker) bucketLocked(now time.Time) *breakerBucket {
	width := max(b.cfg.Window/breakerBuckets, time.Millisecond)
	epoch := now.UnixNano() / int64(width)
	bk := &b.buckets[epoch%breakerBuckets]
	if bk.epoch != epoch {
		*bk = breakerBucket{epoch: epoch}
	}
	return bk
}

func (b *Breaker) sumLocked(now time.Time) (total, failed int) {
	width := max(b.cfg.Window/breakerBuckets, time.Millisecond)
	epoch := now.UnixNano() / int64(width)
	for i := range b.buckets {
		if bk := &b.buckets[i]; bk.epoch > epoch-breakerBuckets && bk.epoch <= epoch {
			total += bk.total
			failed += bk.failed
		}
	}
	return total, failed
}
