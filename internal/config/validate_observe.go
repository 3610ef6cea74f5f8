package config

import (
	"net"
	"net/url"
	"slices"
)

// observability checks the tracing and dashboard settings.
func (v *validator) observability() {
	o := &v.c.Observability
	t := &o.Tracing
	const tp = "observability.tracing"
	if t.Enabled && t.Endpoint == "" {
		v.r.Errorf(Field(tp, "endpoint"), "an endpoint is required when tracing is enabled, e.g. http://127.0.0.1:4318/v1/traces")
	}
	if t.Endpoint != "" {
		v.httpURL(Field(tp, "endpoint"), t.Endpoint)
		if u, err := url.Parse(t.Endpoint); err == nil && t.CAFile != "" && u.Scheme != "https" {
			v.r.Errorf(Field(tp, "ca_file"), "is for an https endpoint; the endpoint is %s", u.Scheme)
		}
	}
	if r := t.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		v.r.Errorf(Field(tp, "sample_ratio"), "must be between 0 and 1")
	}
	for _, name := range sortedMapKeys(t.Headers) {
		if !headerNameRE.MatchString(name) {
			v.r.Errorf(Key(Field(tp, "headers"), name), "%q is not a valid header name", name)
		}
		if t.Headers[name].IsZero() {
			v.r.Errorf(Key(Field(tp, "headers"), name), "needs a secret reference such as ${env:NAME}")
		}
	}
	v.positive(Field(tp, "timeout"), t.Timeout)

	d := &o.Dashboard
	const dp = "observability.dashboard"
	if d.InsecureLocal {
		host, _, err := net.SplitHostPort(v.c.Server.AdminAddress())
		if err != nil || !IsLoopbackHost(host) {
			v.r.Errorf(Field(dp, "insecure_local"), "is accepted only when server.admin.address is a loopback address (127.0.0.1, [::1] or localhost); it is %q", v.c.Server.AdminAddress())
		}
		if d.OIDC != nil {
			v.r.Errorf(Field(dp, "insecure_local"), "cannot be combined with oidc: choose one way in")
		}
	}
	if c := d.OIDC; c != nil {
		p := Field(dp, "oidc")
		if c.Issuer != "" {
			v.httpURL(Field(p, "issuer"), c.Issuer)
		}
		if c.RedirectURL != "" {
			v.httpURL(Field(p, "redirect_url"), c.RedirectURL)
			if u, err := url.Parse(c.RedirectURL); err == nil && u.Path != "/ui/callback" {
				v.r.Errorf(Field(p, "redirect_url"), "must be the admin listener's URL followed by /ui/callback, where the dashboard receives the sign-in")
			}
		}
		if len(c.Scopes) > 0 && !slices.Contains(c.Scopes, "openid") {
			v.r.Errorf(Field(p, "scopes"), "must include openid")
		}
		if c.Roles.Claim != "" && !validClaimPath(c.Roles.Claim) {
			v.r.Errorf(Field(p, "roles.claim"), "%q is not a claim path (names separated by dots)", c.Roles.Claim)
		}
		if len(c.Roles.Admin) == 0 && len(c.Roles.Viewer) == 0 {
			v.r.Errorf(Field(p, "roles"), "list at least one claim value under admin or viewer; nobody could use the dashboard otherwise")
		}
	}
	v.positive(Field(dp, "session.idle_timeout"), d.Session.IdleTimeout)
	v.positive(Field(dp, "session.absolute_timeout"), d.Session.AbsoluteTimeout)
	if d.Session.IdleTimeout.Set && d.Session.AbsoluteTimeout.Set && d.Session.IdleTimeout.Duration > d.Session.AbsoluteTimeout.Duration {
		v.r.Errorf(Field(dp, "session.idle_timeout"), "is longer than session.absolute_timeout")
	}
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
