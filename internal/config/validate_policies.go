package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// QuotaPeriods are the calendar periods a quota may count over.
var QuotaPeriods = []string{"hour", "day", "week", "month"}

// policies checks the traffic-policy keys of every API and operation.
func (v *validator) policies() {
	for i := range v.c.APIs {
		api := &v.c.APIs[i]
		p := Index("apis", i)
		v.rateLimits(Field(p, "rate_limits"), api.RateLimits)
		v.quotas(Field(p, "quotas"), api.Quotas)
		if api.OpenAPI != nil && api.OpenAPI.ValidateRequest && len(api.Operations) == 0 {
			v.r.Errorf(Field(p, "openapi.validate_request"), "request validation needs the API's operations; list them (gatehouse import openapi writes them from the document)")
		}
		if api.CORS != nil {
			v.cors(Field(p, "cors"), api.CORS)
		}
		v.ipFilter(Field(p, "ip_filter"), api.IPFilter)
		if t := api.Transforms; t != nil {
			v.transforms(Field(p, "transforms"), t, nil)
			if t.Path != "" {
				v.r.Errorf(Field(p, "transforms.path"), "a path rewrite belongs to an operation, whose path parameters it can use; an API can only strip_prefix")
			}
		}
		for j := range api.Operations {
			op := &api.Operations[j]
			opp := Index(Field(p, "operations"), j)
			v.rateLimits(Field(opp, "rate_limits"), op.RateLimits)
			v.quotas(Field(opp, "quotas"), op.Quotas)
			v.ipFilter(Field(opp, "ip_filter"), op.IPFilter)
			if op.Transforms != nil {
				segs, _ := ParseTemplate(op.Path)
				v.transforms(Field(opp, "transforms"), op.Transforms, segs)
			}
			if op.Mock != nil {
				v.mock(Field(opp, "mock"), op.Mock)
			}
		}
	}
}

func (v *validator) rateLimits(p string, limits []RateLimit) {
	names := map[string]bool{}
	for i, l := range limits {
		lp := Index(p, i)
		v.name(Field(lp, "name"), "rate limit", l.Name, names)
		if l.Rate <= 0 {
			if _, ok := v.r.doc.positions[Field(lp, "rate")]; ok {
				v.r.Errorf(Field(lp, "rate"), "must be at least 1")
			}
		}
		if l.Period.Set && l.Period.Duration <= 0 {
			v.r.Errorf(Field(lp, "period"), "must be greater than zero")
		} else if l.Rate > 0 && l.Period.Set && l.Period.Duration/time.Duration(l.Rate) <= 0 {
			v.r.Errorf(Field(lp, "rate"), "%d per %s is more than one request per nanosecond", l.Rate, l.Period.Duration)
		}
		if l.Burst < 0 {
			v.r.Errorf(Field(lp, "burst"), "must not be negative (0 means the rate)")
		}
		v.maxKeys(Field(lp, "max_keys"), l.MaxKeys)
		v.keySpec(Field(lp, "key"), l.Key)
		switch l.OnRedisFailure {
		case "", RedisOnFailureDeny, RedisOnFailureLocal, RedisOnFailureAllow:
		default:
			v.r.Errorf(Field(lp, "on_redis_failure"), "must be deny, local or allow, not %q", l.OnRedisFailure)
		}
	}
}

func (v *validator) quotas(p string, quotas []Quota) {
	names := map[string]bool{}
	for i, q := range quotas {
		qp := Index(p, i)
		v.name(Field(qp, "name"), "quota", q.Name, names)
		if q.Limit <= 0 {
			if _, ok := v.r.doc.positions[Field(qp, "limit")]; ok {
				v.r.Errorf(Field(qp, "limit"), "must be at least 1")
			}
		}
		if q.Period != "" && !contains(QuotaPeriods, q.Period) {
			v.r.Errorf(Field(qp, "period"), "unknown period %q (known: %s)", q.Period, strings.Join(QuotaPeriods, ", "))
		}
		v.maxKeys(Field(qp, "max_keys"), q.MaxKeys)
		v.keySpec(Field(qp, "key"), q.Key)
		v.quotaKeyStoresNoCredential(Field(qp, "key"), q.Key)
	}
}

func (v *validator) maxKeys(p string, n int) {
	if n < 0 || n > MaxRateLimitKeys {
		v.r.Errorf(p, "must be between 1 and %d (0 or absent: the default)", MaxRateLimitKeys)
	}
}

func (v *validator) keySpec(p string, key []string) {
	if key != nil && len(key) == 0 {
		v.r.Errorf(p, "needs at least one part, or leave it out for the default [subject]")
	}
	seen := map[string]bool{}
	for i, part := range key {
		kp := Index(p, i)
		if _, err := ParseKeyPart(part); err != nil {
			v.r.Errorf(kp, "%v", err)
			continue
		}
		if seen[part] {
			v.r.Errorf(kp, "key part %q is listed twice", part)
		}
		seen[part] = true
	}
}

// quotaKeyStoresNoCredential refuses a quota key made of a header that
// carries a credential: quota counters are saved in the data directory
// under their keys, which would put every token or API key sent (valid
// or not) on disk in clear. Rate-limit keys stay in memory.
func (v *validator) quotaKeyStoresNoCredential(p string, key []string) {
	apiKey := v.c.APIKeys.Header
	if apiKey == "" {
		apiKey = DefaultAPIKeyHeader
	}
	for i, part := range key {
		kp, err := ParseKeyPart(part)
		if err != nil || kp.Kind != KeyHeader {
			continue
		}
		switch h := strings.ToLower(kp.Arg); h {
		case "authorization", "proxy-authorization", "cookie", strings.ToLower(apiKey):
			v.r.Errorf(Index(p, i), "%s carries credentials, which quota counters would save in clear in the data directory; count by subject or consumer (the caller the credential proves) instead", part)
		}
	}
}

func (v *validator) cors(p string, c *CORS) {
	if len(c.AllowOrigins) == 0 {
		if _, ok := v.r.doc.positions[Field(p, "allow_origins")]; ok {
			v.r.Errorf(Field(p, "allow_origins"), "needs at least one origin")
		}
	}
	for i, o := range c.AllowOrigins {
		op := Index(Field(p, "allow_origins"), i)
		if o == "*" {
			if c.AllowCredentials {
				v.r.Errorf(op, "\"*\" cannot be combined with allow_credentials: list the origins")
			}
			continue
		}
		if err := CheckOrigin(o); err != nil {
			v.r.Errorf(op, "%v", err)
		}
	}
	for i, m := range c.AllowMethods {
		if !methodRE.MatchString(m) {
			v.r.Errorf(Index(Field(p, "allow_methods"), i), "invalid method %q: upper-case, such as GET or POST", m)
		}
	}
	for i, h := range c.AllowHeaders {
		hp := Index(Field(p, "allow_headers"), i)
		switch {
		case h == "*" && c.AllowCredentials:
			v.r.Errorf(hp, "\"*\" cannot be combined with allow_credentials: list the headers")
		case h != "*" && !headerNameRE.MatchString(h):
			v.r.Errorf(hp, "%q is not a valid header name", h)
		}
	}
	for i, h := range c.ExposeHeaders {
		if !headerNameRE.MatchString(h) {
			v.r.Errorf(Index(Field(p, "expose_headers"), i), "%q is not a valid header name", h)
		}
	}
	if c.MaxAge.Duration > MaxCORSMaxAge {
		v.r.Errorf(Field(p, "max_age"), "must be at most %s", MaxCORSMaxAge)
	}
}

// CheckOrigin checks an allowed-origin pattern: scheme://host[:port], where
// host may start with "*." to allow any subdomain.
func CheckOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("origin %q must be scheme://host[:port], e.g. https://app.example.com (no path or trailing slash)", o)
	}
	if o != strings.ToLower(o) {
		return fmt.Errorf("origin %q must be lower-case", o)
	}
	host := u.Hostname()
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		host = rest
	}
	if !hostRE.MatchString(host) && !IsLoopbackHost(host) {
		if !strings.HasPrefix(u.Host, "[") {
			return fmt.Errorf("origin %q has an invalid host", o)
		}
	}
	if p := u.Port(); p != "" {
		if _, err := parsePort(p); err != nil {
			return fmt.Errorf("origin %q has an invalid port", o)
		}
	}
	return nil
}

func (v *validator) ipFilter(p string, f *IPFilter) {
	if f == nil {
		return
	}
	if len(f.Allow) == 0 && len(f.Deny) == 0 {
		v.r.Errorf(p, "needs allow or deny")
	}
	for _, list := range []struct {
		key   string
		items []string
	}{{"allow", f.Allow}, {"deny", f.Deny}} {
		for i, c := range list.items {
			if _, err := ParsePrefix(c); err != nil {
				v.r.Errorf(Index(Field(p, list.key), i), "%v", err)
			}
		}
	}
}

// forbiddenTransformHeaders cannot be changed by transforms: they frame
// the message or route it, and changing them would desynchronize the
// gateway and the backend.
var forbiddenTransformHeaders = []string{"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}

func (v *validator) transforms(p string, t *Transforms, segs []Segment) {
	v.headerOps(Field(p, "request_headers"), t.RequestHeaders)
	v.headerOps(Field(p, "response_headers"), t.ResponseHeaders)
	if t.StripPrefix != "" {
		if err := checkPrefix(t.StripPrefix); err != nil || t.StripPrefix == "/" {
			v.r.Errorf(Field(p, "strip_prefix"), "strip_prefix %q must be a path prefix such as /api (not /, no parameters)", t.StripPrefix)
		}
	}
	if t.Path == "" {
		return
	}
	if t.StripPrefix != "" {
		v.r.Errorf(Field(p, "path"), "set path or strip_prefix, not both")
	}
	tsegs, err := ParseTemplate(t.Path)
	if err != nil {
		v.r.Errorf(Field(p, "path"), "%v", err)
		return
	}
	if segs == nil {
		return
	}
	have := map[string]SegmentKind{}
	for _, s := range segs {
		if s.Kind != Literal {
			have[s.Value] = s.Kind
		}
	}
	for _, s := range tsegs {
		if s.Kind == Literal {
			continue
		}
		kind, ok := have[s.Value]
		switch {
		case !ok:
			v.r.Errorf(Field(p, "path"), "{%s} is not a parameter of the operation's path", s.Value)
		case kind != s.Kind:
			v.r.Errorf(Field(p, "path"), "{%s} must be written as in the operation's path (with or without ...)", s.Value)
		}
	}
}

func (v *validator) headerOps(p string, h *HeaderOps) {
	if h == nil {
		return
	}
	check := func(hp, name string) {
		switch {
		case !headerNameRE.MatchString(name):
			v.r.Errorf(hp, "%q is not a valid header name", name)
		case contains(forbiddenTransformHeaders, strings.ToLower(name)):
			v.r.Errorf(hp, "header %s cannot be changed by a transform", name)
		}
	}
	for _, m := range []struct {
		key string
		m   map[string]string
	}{{"set", h.Set}, {"append", h.Append}} {
		for name, val := range m.m {
			hp := Key(Field(p, m.key), name)
			check(hp, name)
			if !validHeaderValue(val) {
				v.r.Errorf(hp, "header value contains a control character")
			}
		}
	}
	for i, name := range h.Remove {
		check(Index(Field(p, "remove"), i), name)
	}
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func (v *validator) mock(p string, m *Mock) {
	if m.Status != 0 && (m.Status < 200 || m.Status > 599) {
		v.r.Errorf(Field(p, "status"), "must be a final status code, 200 to 599")
	}
	if m.Body != "" && m.BodyFile != "" {
		v.r.Errorf(Field(p, "body_file"), "set body or body_file, not both")
	}
	if len(m.Body) > MaxMockBody {
		v.r.Errorf(Field(p, "body"), "is larger than %d bytes", MaxMockBody)
	}
	for name, val := range m.Headers {
		hp := Key(Field(p, "headers"), name)
		if !headerNameRE.MatchString(name) {
			v.r.Errorf(hp, "%q is not a valid header name", name)
		}
		if !validHeaderValue(val) {
			v.r.Errorf(hp, "header value contains a control character")
		}
	}
}
