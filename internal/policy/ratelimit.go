package policy

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/gatehouse-dev/gatehouse/internal/ratelimit"
)

// RateLimiter counts requests under a key; ratelimit.Memory and
// ratelimit.Redis implement it.
// The key's bytes are the caller's again once Allow returns.
type RateLimiter interface {
	Allow(ctx context.Context, key []byte, now time.Time) (ratelimit.Decision, error)
}

// RateRule is one compiled rate limit of an operation.
type RateRule struct {
	Name    string
	Limiter RateLimiter
	Key     LimitKey
	// Quota and Window (whole seconds) are what RateLimit-Policy
	// advertises: the burst, and the time it takes to refill.
	Quota  int64
	Window int64
}

// RateLimitOptions configure the rate-limit step of one operation.
type RateLimitOptions struct {
	Rules   []RateRule
	Now     func() time.Time
	Observe func(outcome string)
}

// RateLimit returns the step that checks every rule of an operation, in
// order; the first that refuses decides (429). A request refused by a
// rule still counts against the rules before it. Allowed responses carry
// the RateLimit-Policy and RateLimit fields of
// draft-ietf-httpapi-ratelimit-headers-10, one item per rule (none for a
// rule Redis could not check under storage.redis.on_failure allow).
func RateLimit(o RateLimitOptions) Step {
	// The RateLimit-Policy value is the same for every response: one
	// slice, shared (length and capacity 1, so that an append copies it).
	policy := rateLimitPolicy(o.Rules)
	policyVals := []string{policy}
	now := o.Now
	systemClock := now == nil
	if systemClock {
		now = time.Now
	}
	return func(next Handler) Handler {
		return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			x := ExchangeFrom(r.Context())
			p := principalIn(r.Context(), x)
			var t time.Time
			if systemClock && x != nil && !x.Start.IsZero() {
				t = x.Start // when the request arrived: no clock reading of its own
			} else {
				t = now()
			}
			var value []byte // the RateLimit value: in the exchange's buffer under the gateway
			if x != nil {
				value = x.rateLimitBuf[:0]
			}
			// A key is built on the stack: the in-memory limiter only
			// hashes it. Another limiter gets a copy in a pooled buffer
			// (allow): given to an interface's method, kb would be
			// moved to the heap for every request.
			var kb [keyBufferSize]byte
			for i := range o.Rules {
				rule := &o.Rules[i]
				key := rule.Key.Append(kb[:0], r, x, p)
				var d ratelimit.Decision
				var err error
				if m, ok := rule.Limiter.(*ratelimit.Memory); ok {
					d, err = m.Allow(r.Context(), key, t)
				} else {
					d, err = allow(r.Context(), rule.Limiter, key, t)
				}
				if err != nil {
					observe(o.Observe, "error")
					e := Unavailable("rate_limit_unavailable", "The rate limiter is not available; try again shortly.", err)
					// A failing Redis is asked again after a second.
					e.Header = http.Header{"Retry-After": retryAfterOne}
					return e
				}
				if !d.Allowed {
					observe(o.Observe, "denied")
					return rateLimited(rule, d, policy)
				}
				if d.Unchecked {
					continue // Redis failed, on_failure allow: nothing to advertise
				}
				if len(value) > 0 {
					value = append(value, ", "...)
				}
				value = appendRateItem(value, rule.Name, d.Remaining, ceilSeconds(d.Reset))
			}
			observe(o.Observe, "allowed")
			if x == nil {
				h := w.Header()
				h["Ratelimit-Policy"] = policyVals
				if len(value) > 0 {
					h["Ratelimit"] = []string{string(value)}
				}
				return next.ServeHTTP(w, r)
			}
			// The bytes are the exchange's (or, past its buffer, the
			// append's own), and nothing writes them again.
			x.rateLimit[0] = unsafe.String(unsafe.SliceData(value), len(value))
			x.rateLimitPolicy = &policyVals
			if !x.DeferFields {
				x.PutFields(w.Header())
			}
			return next.ServeHTTP(w, r)
		})
	}
}

// retryAfterOne is the Retry-After of rate_limit_unavailable.
var retryAfterOne = []string{"1"}

// keyBufferSize is the room for a key on the stack; a longer one goes
// to the heap as append grows it.
const keyBufferSize = 128

// keyBuffers hold the copies of keys given to limiters other than the
// in-memory one (allow).
var keyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// allow asks l about a copy of key, in a buffer of keyBuffers.
func allow(ctx context.Context, l RateLimiter, key []byte, t time.Time) (ratelimit.Decision, error) {
	bp := keyBuffers.Get().(*[]byte)
	defer keyBuffers.Put(bp)
	*bp = append((*bp)[:0], key...)
	return l.Allow(ctx, *bp, t)
}

func observe(f func(string), outcome string) {
	if f != nil {
		f(outcome)
	}
}

// rateLimitPolicy formats the RateLimit-Policy value of rules.
func rateLimitPolicy(rules []RateRule) string {
	var b strings.Builder
	for i, r := range rules {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q;q=%d;w=%d", r.Name, r.Quota, r.Window)
	}
	return b.String()
}

// appendRateItem appends one RateLimit item: "name";r=remaining;t=reset.
func appendRateItem(b []byte, name string, remaining, reset int64) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `";r=`...)
	b = strconv.AppendInt(b, remaining, 10)
	b = append(b, ";t="...)
	return strconv.AppendInt(b, reset, 10)
}

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

func rateLimited(rule *RateRule, d ratelimit.Decision, policy string) *Error {
	retry := max(ceilSeconds(d.RetryAfter), 1)
	return &Error{
		Status: http.StatusTooManyRequests,
		Type:   "rate-limited",
		Title:  "Too many requests",
		Detail: fmt.Sprintf("The rate limit %q is exceeded; retry in %d s.", rule.Name, retry),
		Reason: "rate_limited",
		Header: http.Header{
			"Retry-After":      {strconv.FormatInt(retry, 10)},
			"Ratelimit-Policy": {policy},
			"Ratelimit":        {string(appendRateItem(nil, rule.Name, 0, ceilSeconds(d.Reset)))},
		},
		Extensions: map[string]any{"limit": rule.Name},
	}
}
