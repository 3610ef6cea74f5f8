package policy

import (
	"net/http"
	"net/netip"
)

// IPFilterOptions configure an IP filter: when Allow is not empty, the
// client IP must be in it; an IP in Deny is refused even if allowed.
type IPFilterOptions struct {
	Allow   []netip.Prefix
	Deny    []netip.Prefix
	Observe func(outcome string)
}

// IPFilter returns the step that refuses clients by address (403,
// ip_denied). The address is the trusted client IP the gateway
// established (X-Forwarded-For only from trusted proxies). A request whose
// address is unknown is refused when there is an allow list.
func IPFilter(o IPFilterOptions) Step {
	return func(next Handler) Handler {
		return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			var ip netip.Addr
			if x := ExchangeFrom(r.Context()); x != nil {
				ip = x.ClientIP
			}
			if !o.Allows(ip) {
				observe(o.Observe, "denied")
				return &Error{Status: http.StatusForbidden, Type: "ip-denied", Title: "Forbidden",
					Detail: "Requests from this address are not allowed.", Reason: "ip_denied"}
			}
			observe(o.Observe, "allowed")
			return next.ServeHTTP(w, r)
		})
	}
}

// Allows reports whether ip passes the filter.
func (o *IPFilterOptions) Allows(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range o.Deny {
		if ip.IsValid() && p.Contains(ip) {
			return false
		}
	}
	if len(o.Allow) == 0 {
		return true
	}
	for _, p := range o.Allow {
		if ip.IsValid() && p.Contains(ip) {
			return true
		}
	}
	return false
}
