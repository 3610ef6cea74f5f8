package policy

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/quota"
)

// QuotaCounter counts requests under a key for the current period;
// quota.Counter implements it.
type QuotaCounter interface {
	Allow(ctx context.Context, key string, now time.Time) (quota.Decision, error)
}

// QuotaRule is one compiled quota of an operation.
type QuotaRule struct {
	Name    string
	Counter QuotaCounter
	Key     LimitKey
	Limit   int64
	// Location is the time zone in which renews_at is written.
	Location *time.Location
}

// QuotaOptions configure the quota step of one operation.
type QuotaOptions struct {
	Rules   []QuotaRule
	Now     func() time.Time
	Observe func(outcome string)
}

// Quotas returns the step that checks every quota of an operation, in
// order. An exhausted quota is a 429 (like a rate limit, it passes with
// time) with Retry-After and a renews_at member saying when the next
// period starts. Allowed responses list the quotas in RateLimit-Policy
// and RateLimit (without w: a calendar period is not a sliding window).
func Quotas(o QuotaOptions) Step {
	var pb strings.Builder
	for i, q := range o.Rules {
		if i > 0 {
			pb.WriteString(", ")
		}
		fmt.Fprintf(&pb, "%q;q=%d", q.Name, q.Limit)
	}
	policy := pb.String()
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return func(next Handler) Handler {
		return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			x := ExchangeFrom(r.Context())
			p := principalIn(r.Context(), x)
			t := now()
			var hb [96]byte
			value := hb[:0]
			for i := range o.Rules {
				rule := &o.Rules[i]
				d, err := rule.Counter.Allow(r.Context(), rule.Key.String(r, x, p), t)
				if err != nil {
					observe(o.Observe, "error")
					return Unavailable("quota_unavailable", "The quota store is not available; try again shortly.", err)
				}
				if !d.Allowed {
					observe(o.Observe, "denied")
					return quotaExhausted(rule, d, t, policy)
				}
				if i > 0 {
					value = append(value, ", "...)
				}
				value = appendRateItem(value, rule.Name, d.Remaining, ceilSeconds(d.Renews.Sub(t)))
			}
			observe(o.Observe, "allowed")
			h := w.Header()
			h["Ratelimit-Policy"] = append(h["Ratelimit-Policy"], policy)
			h["Ratelimit"] = append(h["Ratelimit"], string(value))
			return next.ServeHTTP(w, r)
		})
	}
}

func quotaExhausted(rule *QuotaRule, d quota.Decision, now time.Time, policy string) *Error {
	retry := max(ceilSeconds(d.Renews.Sub(now)), 1)
	renews := d.Renews
	if rule.Location != nil {
		renews = renews.In(rule.Location)
	}
	return &Error{
		Status: http.StatusTooManyRequests,
		Type:   "quota-exhausted",
		Title:  "Quota exhausted",
		Detail: fmt.Sprintf("The quota %q is used up; it renews at %s.", rule.Name, renews.Format(time.RFC3339)),
		Reason: "quota_exhausted",
		Header: http.Header{
			"Retry-After":      {strconv.FormatInt(retry, 10)},
			"Ratelimit-Policy": {policy},
			"Ratelimit":        {string(appendRateItem(nil, rule.Name, 0, retry))},
		},
		Extensions: map[string]any{"quota": rule.Name, "renews_at": renews.Format(time.RFC3339)},
	}
}
