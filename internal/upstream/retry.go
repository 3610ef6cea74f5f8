package upstream

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// RetryConfig says which failed attempts are tried again.
type RetryConfig struct {
	// MaxRetries is the number of retries after the first attempt; 0
	// turns retries off.
	MaxRetries int
	// OnStatus holds the retried response statuses (500-599).
	OnStatus StatusSet
	// NonIdempotent allows retrying methods that are not idempotent.
	NonIdempotent bool
	// BackoffBase and BackoffMax shape the wait before a retry.
	BackoffBase, BackoffMax time.Duration
	Budget                  BudgetConfig
}

// StatusSet is a set of statuses from 500 to 599.
type StatusSet [2]uint64

// Add puts status s (500-599) in the set; others are ignored.
func (ss *StatusSet) Add(s int) {
	if s >= 500 && s <= 599 {
		ss[(s-500)/64] |= 1 << ((s - 500) % 64)
	}
}

// Has reports whether s is in the set.
func (ss *StatusSet) Has(s int) bool {
	return s >= 500 && s <= 599 && ss[(s-500)/64]&(1<<((s-500)%64)) != 0
}

// Idempotent reports whether a method is idempotent (RFC 9110 §9.2.2:
// GET, HEAD, OPTIONS, TRACE, PUT, DELETE).
func Idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// Backoff returns the wait before retry n (1 for the first retry): a
// uniformly random duration in [0, min(maxD, base × 2^(n-1))) — "full
// jitter", so that clients that failed together do not retry together.
func Backoff(n int, base, maxD time.Duration) time.Duration {
	ceil := base
	for i := 1; i < n && ceil < maxD; i++ {
		ceil *= 2
	}
	ceil = min(ceil, maxD)
	if ceil <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceil)))
}

// BudgetConfig bounds retries: over the last Window, retries may be at
// most Percent of the requests, or MinRetries, whichever is larger.
type BudgetConfig struct {
	Percent    int
	MinRetries int
	Window     time.Duration
}

// defaultBudgetWindow is the budget window when a configuration sets none.
const defaultBudgetWindow = 10 * time.Second

// budgetBuckets is the resolution of the budget's rolling window.
const budgetBuckets = 10

// Budget is a retry budget over a rolling window. Requests are counted
// without a lock; the counts are approximate under heavy concurrency (a
// bucket being recycled may lose a few increments), which is fine for a
// budget.
type Budget struct {
	cfg      atomic.Pointer[BudgetConfig]
	requests [budgetBuckets]budgetBucket
	retries  [budgetBuckets]budgetBucket
	mu       sync.Mutex // serializes TryRetry's check and spend
}

type budgetBucket struct {
	epoch atomic.Int64
	n     atomic.Int64
}

// NewBudget returns a budget with configuration c.
func NewBudget(c BudgetConfig) *Budget {
	b := &Budget{}
	b.configure(c)
	return b
}

func (b *Budget) configure(c BudgetConfig) {
	if old := b.cfg.Load(); old != nil && old.Window != c.Window {
		for i := range b.requests {
			b.requests[i].epoch.Store(0)
			b.retries[i].epoch.Store(0)
		}
	}
	b.cfg.Store(&c)
}

func (b *Budget) epoch(now time.Time, c *BudgetConfig) int64 {
	width := max(c.Window/budgetBuckets, time.Millisecond)
	return now.UnixNano() / int64(width)
}

func add(buckets *[budgetBuckets]budgetBucket, epoch int64) {
	bk := &buckets[epoch%budgetBuckets]
	if old := bk.epoch.Load(); old != epoch && bk.epoch.CompareAndSwap(old, epoch) {
		bk.n.Store(0)
	}
	bk.n.Add(1)
}

func sum(buckets *[budgetBuckets]budgetBucket, epoch int64) int64 {
	var n int64
	for i := range buckets {
		if e := buckets[i].epoch.Load(); e > epoch-budgetBuckets && e <= epoch {
			n += buckets[i].n.Load()
		}
	}
	return n
}

// Request counts one request (not a retry), made at now.
func (b *Budget) Request(now time.Time) {
	c := b.cfg.Load()
	if c == nil {
		return
	}
	add(&b.requests, b.epoch(now, c))
}

// TryRetry spends one retry if the budget allows it.
func (b *Budget) TryRetry() bool {
	c := b.cfg.Load()
	if c == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.epoch(time.Now(), c)
	allowed := max(int64(c.MinRetries), sum(&b.requests, e)*int64(c.Percent)/100)
	if sum(&b.retries, e) >= allowed {
		return false
	}
	add(&b.retries, e)
	return true
}
