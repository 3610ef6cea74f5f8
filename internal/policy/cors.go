package policy

import (
	"net/http"
	"strconv"
	"strings"
)

// OriginPattern is an allowed origin with a subdomain wildcard:
// https://*.example.com is Scheme "https", Suffix ".example.com", Port "".
type OriginPattern struct {
	Scheme string
	Suffix string
	Port   string
}

func (p *OriginPattern) match(origin string) bool {
	rest, ok := cutPrefixFold(origin, p.Scheme+"://")
	if !ok {
		return false
	}
	host, port := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i:], "]") {
		host, port = rest[:i], rest[i+1:]
	}
	if port != p.Port {
		return false
	}
	// At least one label before the suffix, and no empty label.
	return len(host) > len(p.Suffix) && hasSuffixFold(host, p.Suffix) && host[0] != '.' &&
		!strings.Contains(host[:len(host)-len(p.Suffix)], "..")
}

// CORSOptions configure the CORS step of an API. Origins and headers are
// lower-case.
type CORSOptions struct {
	AnyOrigin   bool
	Origins     []string
	Patterns    []OriginPattern
	Methods     []string
	AnyHeader   bool
	Headers     []string
	Expose      []string
	Credentials bool
	MaxAge      int // seconds
	Observe     func(outcome string)
}

// CORS returns the step that answers preflight requests (OPTIONS with
// Origin and Access-Control-Request-Method) itself, before any other
// step, and adds the CORS response headers to allowed cross-origin
// requests. A preflight from a disallowed origin, or asking for a method
// or header that is not allowed, is refused with 403 (cors_rejected); an
// actual request from a disallowed origin goes on without CORS headers,
// so the browser does not expose the response.
func CORS(o CORSOptions) Step {
	methods := strings.Join(o.Methods, ", ")
	expose := strings.Join(o.Expose, ", ")
	maxAge := strconv.Itoa(o.MaxAge)
	return func(next Handler) Handler {
		return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			origin := r.Header.Get("Origin")
			reqMethod := r.Header.Get("Access-Control-Request-Method")
			h := w.Header()
			if r.Method == http.MethodOptions && origin != "" && reqMethod != "" {
				h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
				if !o.originAllowed(origin) {
					observe(o.Observe, "denied")
					return corsRejected("The origin is not allowed to call this API.")
				}
				if !containsString(o.Methods, reqMethod) {
					observe(o.Observe, "denied")
					return corsRejected("The method " + safeToken(reqMethod) + " is not allowed for cross-origin requests.")
				}
				reqHeaders := r.Header.Values("Access-Control-Request-Headers")
				if bad := o.disallowedHeader(reqHeaders); bad != "" {
					observe(o.Observe, "denied")
					return corsRejected("The header " + safeToken(bad) + " is not allowed for cross-origin requests.")
				}
				observe(o.Observe, "allowed")
				o.allowOrigin(h, origin)
				h.Set("Access-Control-Allow-Methods", methods)
				if len(reqHeaders) > 0 {
					h.Set("Access-Control-Allow-Headers", strings.Join(reqHeaders, ", "))
				}
				h.Set("Access-Control-Max-Age", maxAge)
				w.WriteHeader(http.StatusNoContent)
				return nil
			}
			if !o.AnyOrigin || o.Credentials {
				h.Add("Vary", "Origin")
			}
			if origin != "" && o.originAllowed(origin) {
				o.allowOrigin(h, origin)
				if expose != "" {
					h.Set("Access-Control-Expose-Headers", expose)
				}
			}
			return next.ServeHTTP(w, r)
		})
	}
}

func (o *CORSOptions) originAllowed(origin string) bool {
	if o.AnyOrigin {
		return true
	}
	for _, a := range o.Origins {
		if strings.EqualFold(a, origin) {
			return true
		}
	}
	for i := range o.Patterns {
		if o.Patterns[i].match(origin) {
			return true
		}
	}
	return false
}

func (o *CORSOptions) allowOrigin(h http.Header, origin string) {
	if o.AnyOrigin && !o.Credentials {
		h.Set("Access-Control-Allow-Origin", "*")
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if o.Credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// disallowedHeader returns the first requested header that is not
// allowed, or "".
func (o *CORSOptions) disallowedHeader(values []string) string {
	if o.AnyHeader {
		return ""
	}
	for _, list := range values {
		for item := range strings.SplitSeq(list, ",") {
			name := strings.TrimSpace(item)
			if name == "" {
				continue
			}
			ok := false
			for _, a := range o.Headers {
				if strings.EqualFold(a, name) {
					ok = true
					break
				}
			}
			if !ok {
				return name
			}
		}
	}
	return ""
}

func corsRejected(detail string) *Error {
	return &Error{Status: http.StatusForbidden, Type: "cors-rejected", Title: "Cross-origin request refused",
		Detail: detail, Reason: "cors_rejected"}
}

// safeToken keeps a client-supplied token printable and short for a detail.
func safeToken(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) >= len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}
