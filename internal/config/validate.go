package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Load reads, decodes and validates a configuration file.
func Load(file string) (*Document, Diagnostics) {
	data, err := readFile(file)
	if err != nil {
		return &Document{File: file, Config: &Config{}, positions: map[string]Pos{}},
			Diagnostics{{File: file, Msg: err.Error()}}
	}
	return Parse(file, data)
}

func readFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("file is %d bytes; the limit is %d", st.Size(), MaxFileSize)
	}
	data := make([]byte, st.Size())
	_, err = f.ReadAt(data, 0)
	if err != nil && st.Size() > 0 {
		return nil, err
	}
	return data, nil
}

// Parse decodes and validates configuration data. Decoding problems and
// validation problems are reported together.
func Parse(file string, data []byte) (*Document, Diagnostics) {
	doc, diags := Decode(file, data)
	// A value that failed to decode is left empty; validation would then
	// report that emptiness again. Keep only the decoding problem.
	bad := map[string]bool{}
	for _, d := range diags {
		bad[d.Path] = true
		bad[parentPath(d.Path)] = true
	}
	for _, d := range Validate(doc) {
		if !bad[d.Path] {
			diags = append(diags, d)
		}
	}
	diags.Sort()
	if len(diags) == 0 {
		return doc, nil
	}
	return doc, diags
}

// Validate checks the meaning of a decoded configuration: references
// between sections, uniqueness, formats, and the default-deny rule. It
// reports every problem found.
func Validate(doc *Document) Diagnostics {
	v := &validator{r: NewReporter(doc), c: doc.Config}
	v.server()
	v.identityProviders()
	v.apiKeys()
	v.consumers()
	v.backends()
	v.apis()
	v.backendIdentity()
	v.policies()
	v.storeAdminRegistry()
	v.upstreams()
	v.observability()
	v.anomalies()
	v.caseInsensitivePaths()
	return v.r.Diagnostics()
}

type validator struct {
	r *Reporter
	c *Config

	providers    map[string]bool
	backendNames map[string]bool
	mtls         bool // some listener verifies client certificates
}

var (
	headerNameRE = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_` + "`" + `|~-]+$`)
	methodRE     = regexp.MustCompile(`^[A-Z][A-Z-]*$`)
	nameRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	hostRE       = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
	paramRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

func (v *validator) name(path, kind, name string, seen map[string]bool) {
	switch {
	case name == "":
		return // reported as a missing required key
	case !nameRE.MatchString(name):
		v.r.Errorf(path, "%s name %q must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit", kind, name)
	case seen[name]:
		v.r.Errorf(path, "duplicate %s name %q", kind, name)
	}
	seen[name] = true
}

func (v *validator) hostPort(path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.r.Errorf(path, "invalid address %q: want host:port, e.g. \":8080\" or \"127.0.0.1:9901\"", addr)
		return
	}
	if host != "" && net.ParseIP(host) == nil && !hostRE.MatchString(strings.ToLower(host)) {
		v.r.Errorf(path, "invalid host %q in address", host)
	}
	if p, err := parsePort(port); err != nil || (p == 0 && port != "0") {
		v.r.Errorf(path, "invalid port %q in address", port)
	}
}

func parsePort(s string) (int, error) {
	var p int
	if _, err := fmt.Sscanf(s, "%d", &p); err != nil || p < 0 || p > 65535 || fmt.Sprint(p) != s {
		return 0, fmt.Errorf("invalid port")
	}
	return p, nil
}

func (v *validator) positive(path string, d Duration) {
	if d.Set && d.Duration <= 0 {
		v.r.Errorf(path, "must be greater than zero")
	}
}

func (v *validator) server() {
	s := &v.c.Server
	names, addrs := map[string]bool{}, map[string]bool{}
	for i, l := range s.Listeners {
		p := Index("server.listeners", i)
		if l.Name != "" {
			v.name(Field(p, "name"), "listener", l.Name, names)
		}
		if l.Address != "" {
			v.hostPort(Field(p, "address"), l.Address)
			if addrs[l.Address] && !strings.HasSuffix(l.Address, ":0") {
				v.r.Errorf(Field(p, "address"), "address %q is used by another listener", l.Address)
			}
			addrs[l.Address] = true
		}
		if l.TLS != nil {
			switch l.TLS.MinVersion {
			case "", "1.2", "1.3":
			default:
				v.r.Errorf(Field(p, "tls.min_version"), "must be \"1.2\" or \"1.3\"")
			}
			if l.TLS.ClientCAFile != "" {
				v.mtls = true
			}
		}
	}
	if s.Admin.Address != "" {
		v.hostPort("server.admin.address", s.Admin.Address)
		if addrs[s.Admin.Address] && !strings.HasSuffix(s.Admin.Address, ":0") {
			v.r.Errorf("server.admin.address", "address %q is also a public listener", s.Admin.Address)
		}
	}
	v.positive("server.timeouts.read_header", s.Timeouts.ReadHeader)
	v.positive("server.timeouts.idle", s.Timeouts.Idle)
	v.positive("server.timeouts.shutdown", s.Timeouts.Shutdown)
	if s.Limits.MaxHeaderBytes.Set && (s.Limits.MaxHeaderBytes.Bytes < 1024 || s.Limits.MaxHeaderBytes.Bytes > 1<<20) {
		v.r.Errorf("server.limits.max_header_bytes", "must be between 1KiB and 1MiB")
	}
	if s.Limits.MaxURI.Set && (s.Limits.MaxURI.Bytes < 256 || s.Limits.MaxURI.Bytes > 1<<20) {
		v.r.Errorf("server.limits.max_uri", "must be between 256B and 1MiB")
	}
	if n := s.Limits.MaxConnections; n < 0 || n > 1<<24 {
		v.r.Errorf("server.limits.max_connections", "must be between 1 and 16777216; leave it out (or 0) for the default")
	}
	for i, c := range s.TrustedProxies {
		if _, err := ParsePrefix(c); err != nil {
			v.r.Errorf(Index("server.trusted_proxies", i), "%v", err)
		}
	}
	if h := s.RequestID.Header; h != "" {
		switch {
		case !headerNameRE.MatchString(h):
			v.r.Errorf("server.request_id.header", "%q is not a valid header name", h)
		case containsFold(reservedRequestIDHeaders, h):
			v.r.Errorf("server.request_id.header", "%s cannot carry the request ID: the gateway sets or removes it itself", h)
		}
	}
	if p := s.IdentityHeaders.Prefix; p != "" {
		if !headerNameRE.MatchString(p) || !strings.HasSuffix(p, "-") || len(p) < 3 {
			v.r.Errorf("server.identity_headers.prefix", "%q must be a header-name prefix ending in '-', e.g. X-Gatehouse-", p)
		}
	}
}

// reservedRequestIDHeaders cannot carry the request ID: they frame or
// route the message, or the gateway writes them with values of its own.
// (The gateway writes the request ID field without checking its name per
// request: this list and the name's syntax are that check.)
var reservedRequestIDHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection",
	"Keep-Alive", "Te", "Upgrade", "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate",
	"Traceparent", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// ParsePrefix parses a CIDR, or a single IP as a one-address prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
		}
		return p, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
}

// Algorithms lists the JWS algorithms an identity provider may allow.
// HMAC algorithms are absent on purpose: a gateway never shares a secret
// with an IdP, and accepting them opens algorithm-confusion attacks.
var Algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// MaxClockSkew bounds identity_providers[].clock_skew.
const MaxClockSkew = 5 * time.Minute

func (v *validator) identityProviders() {
	v.providers = map[string]bool{}
	issuers := map[string]bool{}
	for i, idp := range v.c.IdentityProviders {
		p := Index("identity_providers", i)
		v.name(Field(p, "name"), "identity provider", idp.Name, v.providers)
		if idp.Issuer != "" {
			v.httpURL(Field(p, "issuer"), idp.Issuer)
			if issuers[idp.Issuer] {
				v.r.Errorf(Field(p, "issuer"), "issuer %q is configured twice; a token's iss must choose exactly one provider", idp.Issuer)
			}
			issuers[idp.Issuer] = true
		}
		if idp.JWKSURL != "" {
			v.httpURL(Field(p, "jwks_url"), idp.JWKSURL)
		}
		if len(idp.Audiences) == 0 {
			if _, listed := v.r.doc.positions[Field(p, "audiences")]; listed {
				v.r.Errorf(Field(p, "audiences"), "needs at least one audience")
			}
		}
		for j, a := range idp.Audiences {
			if a == "" {
				v.r.Errorf(Index(Field(p, "audiences"), j), "audience must not be empty")
			}
		}
		for j, a := range idp.Algorithms {
			if !contains(Algorithms, a) {
				v.r.Errorf(Index(Field(p, "algorithms"), j), "algorithm %q is not allowed (allowed: %s)", a, strings.Join(Algorithms, ", "))
			}
		}
		if idp.ClockSkew.Duration > MaxClockSkew {
			v.r.Errorf(Field(p, "clock_skew"), "must be at most %s", MaxClockSkew)
		}
		if idp.MaxTokenSize.Set && (idp.MaxTokenSize.Bytes < 256 || idp.MaxTokenSize.Bytes > 64<<10) {
			v.r.Errorf(Field(p, "max_token_size"), "must be between 256B and 64KiB")
		}
		for _, c := range []struct{ key, val string }{
			{"subject", idp.Claims.Subject}, {"groups", idp.Claims.Groups},
			{"roles", idp.Claims.Roles}, {"scopes", idp.Claims.Scopes},
		} {
			if c.val != "" && !validClaimPath(c.val) {
				v.r.Errorf(Field(p, "claims."+c.key), "invalid claim path %q: dot-separated names, none empty", c.val)
			}
		}
		v.positive(Field(p, "jwks.refresh_interval"), idp.JWKS.RefreshInterval)
		v.positive(Field(p, "jwks.timeout"), idp.JWKS.Timeout)
		if idp.JWKS.RefreshInterval.Set && idp.JWKS.RefreshInterval.Duration < time.Minute {
			v.r.Errorf(Field(p, "jwks.refresh_interval"), "must be at least 1m")
		}
	}
}

func validClaimPath(s string) bool {
	for part := range strings.SplitSeq(s, ".") {
		if part == "" {
			return false
		}
	}
	return true
}

// httpURL checks an absolute http(s) URL. Plain http is accepted only for
// loopback hosts: keys fetched in clear text could be replaced on the way.
func (v *validator) httpURL(path, raw string) {
	u, err := url.Parse(raw)
	// Diagnostics show the URL without a password (user info is refused
	// below, but must not be repeated).
	shown := strconv.Quote(raw)
	if err == nil {
		shown = strconv.Quote(u.Redacted())
	} else if strings.Contains(raw, "@") {
		shown = "the value"
	}
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		v.r.Errorf(path, "%s is not an absolute http(s) URL", shown)
		return
	}
	if u.Scheme == "http" && !IsLoopbackHost(u.Hostname()) {
		v.r.Errorf(path, "%s must use https (plain http is accepted only for loopback hosts)", shown)
	}
	if u.User != nil || u.Fragment != "" {
		v.r.Errorf(path, "%s must not contain user info or a fragment", shown)
	}
}

// IsLoopbackHost reports whether host is localhost or a loopback IP.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// IsLoopbackHostPort is IsLoopbackHost for a host with an optional port,
// as in a Host header or a peer's address: "127.0.0.1:9901", "[::1]:80",
// "localhost".
func IsLoopbackHostPort(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return IsLoopbackHost(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
}

func (v *validator) apiKeys() {
	h := v.c.APIKeys.Header
	if h == "" {
		return
	}
	requestID := v.c.Server.RequestID.Header
	if requestID == "" {
		requestID = DefaultRequestIDHeader
	}
	prefix := v.c.Server.IdentityHeaders.Prefix
	if prefix == "" {
		prefix = DefaultIdentityPrefix
	}
	switch {
	case !headerNameRE.MatchString(h):
		v.r.Errorf("api_keys.header", "%q is not a valid header name", h)
	case containsFold(reservedAPIKeyHeaders, h):
		v.r.Errorf("api_keys.header", "%s cannot carry API keys: it has a meaning of its own, and the gateway sets, forwards or logs it", h)
	case strings.EqualFold(h, requestID):
		v.r.Errorf("api_keys.header", "%s is the request ID's header (server.request_id.header): a key there would be echoed to the client, forwarded and logged", h)
	case len(h) >= len(prefix) && strings.EqualFold(h[:len(prefix)], prefix):
		v.r.Errorf("api_keys.header", "%s is among the identity headers the gateway sends backends (prefix %s)", h, prefix)
	}
}

// reservedAPIKeyHeaders cannot carry API keys: those that cannot carry a
// backend token (framing, hop-by-hop, Cookie, Traceparent), the bearer
// token's, and fields the gateway sets or forwards as they are.
var reservedAPIKeyHeaders = slices.Concat(reservedTokenHeaders, []string{"Authorization", "Tracestate", "Forwarded",
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "User-Agent", "Origin", "Referer"})

var hexRE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

func (v *validator) consumers() {
	names := map[string]bool{}
	hashes := map[string]string{}
	for i, c := range v.c.Consumers {
		p := Index("consumers", i)
		v.name(Field(p, "name"), "consumer", c.Name, names)
		if c.Keys.Primary == nil && c.Keys.Secondary == nil {
			if _, ok := v.r.doc.positions[Field(p, "keys")]; ok {
				v.r.Errorf(Field(p, "keys"), "needs a primary or a secondary key")
			}
		}
		for _, slot := range []struct {
			name string
			key  *APIKey
		}{{"primary", c.Keys.Primary}, {"secondary", c.Keys.Secondary}} {
			if slot.key == nil {
				continue
			}
			kp := Field(p, "keys."+slot.name)
			k := slot.key
			switch {
			case k.SHA256 != "" && !k.Value.IsZero():
				v.r.Errorf(kp, "set either sha256 or value, not both")
			case k.SHA256 == "" && k.Value.IsZero():
				v.r.Errorf(kp, "set sha256 (the key's hash) or value (a secret reference to the key)")
			case k.SHA256 != "":
				if !hexRE.MatchString(k.SHA256) {
					v.r.Errorf(Field(kp, "sha256"), "must be 64 hexadecimal characters (the SHA-256 of the key)")
					continue
				}
				h := strings.ToLower(k.SHA256)
				if other, dup := hashes[h]; dup {
					v.r.Errorf(Field(kp, "sha256"), "the same key hash is already used by %s", other)
				}
				hashes[h] = kp
			}
		}
	}
}

func (v *validator) backends() {
	v.backendNames = map[string]bool{}
	for i, b := range v.c.Backends {
		p := Index("backends", i)
		v.name(Field(p, "name"), "backend", b.Name, v.backendNames)
		if len(b.Instances) == 0 && b.Registry == nil {
			v.r.Errorf(Field(p, "instances"), "needs at least one instance (or registry, to take registered ones)")
		}
		for j, in := range b.Instances {
			ip := Field(Index(Field(p, "instances"), j), "url")
			if in.URL == "" {
				continue
			}
			u, err := url.Parse(in.URL)
			switch {
			case err != nil || u.Host == "" || u.Opaque != "":
				v.r.Errorf(ip, "%q is not an absolute URL", in.URL)
			case u.Scheme != "http" && u.Scheme != "https":
				v.r.Errorf(ip, "scheme %q is not supported (use http or https)", u.Scheme)
			case u.User != nil:
				v.r.Errorf(ip, "user info is not allowed in an instance URL; use backend credentials")
			case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
				v.r.Errorf(ip, "an instance URL is scheme://host:port only; use the API's transforms to change paths")
			}
		}
		if b.MaxIdleConnsPerInstance < 0 {
			v.r.Errorf(Field(p, "max_idle_conns_per_instance"), "must not be negative")
		}
		v.positive(Field(p, "timeouts.dial"), b.Timeouts.Dial)
		v.positive(Field(p, "timeouts.response_header"), b.Timeouts.ResponseHeader)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
