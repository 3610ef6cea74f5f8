package policy

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// Throttler holds back callers flagged by anomaly detection: it says
// whether a request of the caller (a principal, else a client address)
// at t is beyond what the caller may still send, and when to retry.
type Throttler interface {
	Throttled(p *identity.Principal, ip netip.Addr, t time.Time) (time.Duration, bool)
}

// Throttle refuses with 429 the requests a Throttler holds back: by the
// client address (byCaller false: the step runs before authentication,
// so that a source of refused credentials is slowed before its next
// guess is checked), or by the verified caller (byCaller true: after
// authentication; a request with no principal passes).
func Throttle(t Throttler, byCaller bool, observe func()) Step {
	return func(next Handler) Handler {
		return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			x := ExchangeFrom(r.Context())
			var p *identity.Principal
			var ip netip.Addr
			var at time.Time
			if x != nil {
				ip, at = x.ClientIP, x.Start // when the request arrived
			}
			if at.IsZero() {
				at = time.Now()
			}
			if byCaller {
				if p = principalIn(r.Context(), x); p == nil {
					return next.ServeHTTP(w, r)
				}
			}
			if retry, limited := t.Throttled(p, ip, at); limited {
				if observe != nil {
					observe()
				}
				return throttled(retry)
			}
			return next.ServeHTTP(w, r)
		})
	}
}

func throttled(retry time.Duration) *Error {
	s := max(ceilSeconds(retry), 1)
	return &Error{
		Status: http.StatusTooManyRequests,
		Type:   "throttled",
		Title:  "Too many requests",
		Detail: fmt.Sprintf("Requests from this caller are limited for a while after unusual traffic; retry in %d s.", s),
		Reason: "anomaly_throttled",
		Header: http.Header{"Retry-After": {strconv.FormatInt(s, 10)}},
	}
}
