package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/h1"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// Compile turns a validated configuration into a snapshot: it reads the
// files the configuration names (certificates, CAs), resolves secrets,
// parses every value, builds the route table and each operation's chain.
// Problems are reported as diagnostics located in the configuration, and
// no snapshot is returned. With rt.KeySets nil, identity providers are
// checked but no keys are fetched (gatehouse validate).
func Compile(ctx context.Context, doc *config.Document, rt *Runtime) (*Snapshot, config.Diagnostics) {
	c := &compiler{ctx: ctx, doc: doc, cfg: doc.Config, rt: rt, r: config.NewReporter(doc)}
	s := c.compile()
	if d := c.r.Diagnostics(); d != nil {
		return nil, d
	}
	return s, nil
}

type compiler struct {
	ctx context.Context
	doc *config.Document
	cfg *config.Config
	rt  *Runtime
	r   *config.Reporter

	snap     *Snapshot
	backends map[string]*backend
	// secrets resolves every secret reference of this compile.
	secrets  *compileSecrets
	pol      *policyCompiler
	stepBits map[string]uint32 // traced step name → its bit (compile_observe.go)
	// fileConsumers are the configuration's consumer names (keyLookup).
	fileConsumers map[string]bool
}

type backend struct {
	pool      *upstream.Pool
	transport http.RoundTripper
	metrics   interface{ Observe(float64) }
	// credential, when set, puts a minted token on every request.
	credential *backendCredential
	failures   interface{ Failed(reason string) } // nil without metrics
	tunnelIdle time.Duration                      // an upgraded connection's idle timeout (0: none)
}

func (c *compiler) now() time.Time {
	if c.rt.Now != nil {
		return c.rt.Now()
	}
	return time.Now()
}

func (c *compiler) compile() *Snapshot {
	s := &Snapshot{
		Version:       Version(c.cfg),
		Doc:           c.doc,
		Loaded:        c.now(),
		certs:         map[string]*tls.Certificate{},
		clientCAs:     map[string]*x509.CertPool{},
		transportKeys: map[string]bool{},
	}
	c.snap = s
	c.secrets = c.newSecrets()
	c.settings()
	c.anomalies()
	c.tracing()
	c.dashboardSecret()
	c.dashboardTrust()
	c.listeners()
	c.identity()
	keys := c.apiKeys()
	c.compileBackends()
	c.compileBackendIdentity()
	s.router = c.routes(keys)
	c.commitUpstreamSettings()
	c.adminAccess()
	if c.rt.Metrics != nil {
		s.notFound = c.rt.Metrics.Route("", "")
	}
	if c.rt.Stats != nil {
		s.notFoundStats = c.rt.Stats.Route("", "")
	}
	return s
}

// onCommit has Load call apply (if not nil) once the snapshot being
// compiled is to be served: for changes to run-time state that the
// snapshot in service shares, which a refused compile must not make.
func (c *compiler) onCommit(apply func()) {
	if apply != nil {
		c.snap.commits = append(c.snap.commits, apply)
	}
}

// Version returns the identity of a configuration: the first 12 bytes of
// the SHA-256 of its canonical JSON form, in hex. Comments, key order and
// formatting do not change it.
func Version(cfg *config.Config) string {
	b, err := json.Marshal(cfg)
	if err != nil {
		panic(fmt.Sprintf("gateway: config does not encode: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

func (c *compiler) settings() {
	s := &c.cfg.Server
	st := &c.snap.settings
	st.requestIDHeader = http.CanonicalHeaderKey(or(s.RequestID.Header, config.DefaultRequestIDHeader))
	st.requestIDBit = h1.NameBit(st.requestIDHeader)
	st.identityPrefix = http.CanonicalHeaderKey(or(s.IdentityHeaders.Prefix, config.DefaultIdentityPrefix))
	st.identityFold = foldHeaderName(st.identityPrefix)
	st.apiKeyHeader = http.CanonicalHeaderKey(or(c.cfg.APIKeys.Header, config.DefaultAPIKeyHeader))
	st.apiKeyBit = h1.NameBit(st.apiKeyHeader)
	st.accessLog = !s.AccessLog.Disabled
	st.maxURI = int(s.Limits.MaxURI.Or(config.DefaultMaxURI))
	st.bodyReadBy = max(s.Timeouts.Read.Or(config.DefaultReadTimeout)-s.Timeouts.ReadHeader.Or(config.DefaultReadHeaderTimeout), 0)
	st.paths = PathOptions{AllowSemicolon: s.Paths.AllowSemicolon, KeepSlashes: s.Paths.KeepSlashes}
	for i, p := range s.TrustedProxies {
		pfx, err := config.ParsePrefix(p)
		if err != nil {
			c.r.Errorf(config.Index("server.trusted_proxies", i), "%v", err)
			continue
		}
		st.trusted = append(st.trusted, pfx)
	}
}

func (c *compiler) listeners() {
	for i, l := range c.cfg.Server.EffectiveListeners() {
		if l.TLS == nil {
			continue
		}
		p := config.Field(config.Index("server.listeners", i), "tls")
		cert, err := tls.LoadX509KeyPair(l.TLS.CertFile, l.TLS.KeyFile)
		if err != nil {
			c.r.Errorf(p, "loading certificate %s and key %s: %v", l.TLS.CertFile, l.TLS.KeyFile, cleanFileError(err))
			continue
		}
		c.snap.certs[l.Name] = &cert
		if l.TLS.ClientCAFile != "" {
			pool, _, err := loadCAFile(l.TLS.ClientCAFile)
			if err != nil {
				c.r.Errorf(config.Field(p, "client_ca_file"), "%v", err)
				continue
			}
			c.snap.clientCAs[l.Name] = pool
		}
	}
}

// loadCAFile reads a PEM bundle into a pool.
func loadCAFile(file string) (*x509.CertPool, []byte, error) {
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, cleanFileError(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, pemBytes, nil
}

func cleanFileError(err error) error {
	var pe *os.PathError
	if ok := asPathError(err, &pe); ok {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}

func (c *compiler) identity() {
	var providers []*identity.Provider
	for i, idp := range c.cfg.IdentityProviders {
		p := config.Index("identity_providers", i)
		opts := identity.ProviderOptions{
			Name:         idp.Name,
			Issuer:       idp.Issuer,
			Audiences:    idp.Audiences,
			Algorithms:   idp.Algorithms,
			ClockSkew:    idp.ClockSkew.Or(config.DefaultClockSkew),
			RequireType:  idp.RequireType,
			MaxTokenSize: int(idp.MaxTokenSize.Or(config.DefaultMaxTokenSize)),
			SubjectClaim: idp.Claims.Subject,
			GroupsClaim:  idp.Claims.Groups,
			RolesClaim:   idp.Claims.Roles,
			ScopesClaim:  idp.Claims.Scopes,
		}
		if len(opts.Algorithms) == 0 {
			opts.Algorithms = config.DefaultAlgorithms
		}
		ksOpts := identity.KeySetOptions{
			Issuer:          idp.Issuer,
			JWKSURL:         idp.JWKSURL,
			CAFile:          idp.CAFile,
			RefreshInterval: idp.JWKS.RefreshInterval.Or(config.DefaultJWKSRefresh),
			Cooldown:        idp.JWKS.Cooldown.Or(config.DefaultJWKSCooldown),
			Timeout:         idp.JWKS.Timeout.Or(config.DefaultJWKSTimeout),
		}
		if idp.CAFile != "" {
			pool, _, err := loadCAFile(idp.CAFile)
			if err != nil {
				c.r.Errorf(config.Field(p, "ca_file"), "%v", err)
				continue
			}
			ksOpts.RootCAs = pool
		}
		if c.rt.KeySets == nil {
			// Offline (validate): check what can be checked without keys.
			for j, alg := range opts.Algorithms {
				if err := identity.ValidateAlgorithm(alg); err != nil {
					c.r.Errorf(config.Index(config.Field(p, "algorithms"), j), "%v", err)
				}
			}
			continue
		}
		ks, apply := c.rt.KeySets.Prepare(idp.Name, ksOpts)
		c.onCommit(apply)
		c.snap.keySets = append(c.snap.keySets, ks)
		prov, err := identity.NewProvider(opts, ks)
		if err != nil {
			c.r.Errorf(p, "%v", err)
			continue
		}
		providers = append(providers, prov)
	}
	if c.rt.KeySets == nil || len(providers) == 0 {
		return
	}
	v, err := identity.NewVerifier(providers, identity.VerifierOptions{Now: c.rt.Now})
	if err != nil {
		c.r.Errorf("identity_providers", "%v", err)
		return
	}
	c.snap.verifier = v
}

func (c *compiler) apiKeys() *identity.KeyTable {
	table := identity.NewKeyTable()
	for i, cons := range c.cfg.Consumers {
		p := config.Index("consumers", i)
		principal := identity.NewStaticPrincipal(identity.CredentialAPIKey, cons.Name, cons.Name, cons.Groups, cons.Roles, cons.Scopes)
		for _, slot := range []struct {
			name string
			key  *config.APIKey
		}{{"primary", cons.Keys.Primary}, {"secondary", cons.Keys.Secondary}} {
			if slot.key == nil {
				continue
			}
			kp := config.Field(p, "keys."+slot.name)
			var h identity.KeyHash
			if slot.key.SHA256 != "" {
				var err error
				if h, err = identity.ParseKeyHash(slot.key.SHA256); err != nil {
					c.r.Errorf(config.Field(kp, "sha256"), "%v", err)
					continue
				}
			} else {
				v, err := c.secrets.Resolve(c.ctx, slot.key.Value)
				if err != nil {
					c.r.Errorf(config.Field(kp, "value"), "%v", err)
					continue
				}
				h = identity.HashKey(v.Reveal())
			}
			if err := table.Add(h, principal); err != nil {
				c.r.Errorf(kp, "%v", err)
			}
		}
	}
	return table
}

func (c *compiler) compileBackends() {
	c.backends = map[string]*backend{}
	for i, b := range c.cfg.Backends {
		p := config.Index("backends", i)
		var instances []upstream.InstanceSpec
		for j, in := range b.Instances {
			if _, err := upstream.NewInstance(in.URL); err != nil {
				c.r.Errorf(config.Field(config.Index(config.Field(p, "instances"), j), "url"), "%v", err)
				continue
			}
			instances = append(instances, upstream.InstanceSpec{URL: in.URL, Weight: in.Weight})
		}
		opts := upstream.TransportOptions{
			DialTimeout:           b.Timeouts.Dial.Or(config.DefaultDialTimeout),
			ResponseHeaderTimeout: b.Timeouts.ResponseHeader.Or(config.DefaultResponseHeaderTime),
			ResponseIdleTimeout:   b.Timeouts.ResponseIdle.Or(config.DefaultResponseIdle),
			MaxIdleConnsPerHost:   b.MaxIdleConnsPerInstance,
		}
		if opts.MaxIdleConnsPerHost == 0 {
			opts.MaxIdleConnsPerHost = config.DefaultMaxIdlePerInstance
		}
		if b.TLS != nil {
			opts.ServerName = b.TLS.ServerName
			if b.TLS.CAFile != "" {
				pool, pemBytes, err := loadCAFile(b.TLS.CAFile)
				if err != nil {
					c.r.Errorf(config.Field(p, "tls.ca_file"), "%v", err)
					continue
				}
				opts.RootCAs, opts.CAPEM = pool, pemBytes
			}
		}
		c.clientCertificate(p, &c.cfg.Backends[i], &opts)
		be := &backend{tunnelIdle: b.Timeouts.TunnelIdle.Or(config.DefaultTunnelIdle)}
		if c.rt.Transports != nil {
			tr, key := c.rt.Transports.Get(b.Name, opts)
			be.transport = tr
			c.snap.transportKeys[key] = true
		}
		if c.rt.Metrics != nil {
			be.metrics = c.rt.Metrics.Upstream(b.Name)
		}
		c.bindUpstream(p, &b, be, instances)
		c.registryBackend(&c.cfg.Backends[i], be)
		c.backends[b.Name] = be
	}
}

func (c *compiler) routes(keys *identity.KeyTable) *Router {
	rt := newRouter()
	for i := range c.cfg.APIs {
		a := &c.cfg.APIs[i]
		p := config.Index("apis", i)
		be := c.backends[a.Backend]
		if be == nil {
			continue // reported by validation, or by the backend's own errors
		}
		api := &API{
			Name:           a.Name,
			Backend:        a.Backend,
			MaxBody:        a.MaxBody.Or(c.cfg.Server.Limits.MaxBody.Or(config.DefaultMaxBody)),
			PassCredential: a.PassCredential,
			pool:           be.pool,
		}
		api.CaseInsensitivePaths = a.CaseInsensitivePaths
		if a.OpenAPI != nil {
			// Read and checked whether or not it validates requests, so
			// that a wrong path or a broken document is reported.
			c.openAPI(p, a)
		}
		terminal := c.proxies(a, api, be)
		prefix := config.NormalizePrefix(a.PathPrefix)
		var ops []*Operation
		var all *Operation
		if len(a.Operations) == 0 {
			all = &Operation{API: api, Name: "*", Methods: []string{"*"}, Template: "/{path...}", Auth: a.Auth, sensitive: a.Sensitive,
				upstream: c.opUpstream(a, nil)}
			all.handler = c.chain(p, api, all, terminal.For(nil), keys)
		}
		for j := range a.Operations {
			o := &a.Operations[j]
			opp := config.Index(config.Field(p, "operations"), j)
			segs, err := config.ParseTemplate(o.Path)
			if err != nil {
				c.r.Errorf(config.Field(opp, "path"), "%v", err)
				continue
			}
			if len(segs) > MaxParams {
				c.r.Errorf(config.Field(opp, "path"), "path has more than %d segments with parameters", MaxParams)
				continue
			}
			op := &Operation{
				API:       api,
				Name:      o.Name,
				Methods:   o.OperationMethods(),
				Template:  joinPath(prefix, o.Path),
				Auth:      config.EffectiveAuth(a, o),
				segments:  segs,
				sensitive: sensitive(a, o),
			}
			if o.Mock == nil {
				op.upstream = c.opUpstream(a, o)
			}
			if op.Name == "" {
				op.Name = strings.Join(op.Methods, ",") + " " + op.Template
			}
			for _, s := range segs {
				if s.Kind != config.Literal {
					op.paramNames = append(op.paramNames, s.Value)
				}
			}
			op.handler = c.chain(opp, api, op, terminal.For(o), keys)
			ops = append(ops, op)
		}
		ops = c.corsPreflightOps(p, a, api, ops)
		rt.add(api, a.Hosts, prefix, ops, all)
	}
	rt.finish()
	return rt
}

func joinPath(prefix, p string) string {
	if prefix == "/" {
		return p
	}
	if p == "/" {
		return prefix
	}
	return prefix + p
}

// chain builds the steps of one operation, outermost first: body limit,
// authentication, authorization, then the proxy.
func (c *compiler) chain(path string, api *API, op *Operation, terminal policy.Handler, keys *identity.KeyTable) policy.Handler {
	if c.rt.Metrics != nil {
		op.metrics = c.rt.Metrics.Route(api.Name, op.Name)
	}
	c.observeOperation(path, op)
	pre, post, terminal := c.policySteps(path, api, op, terminal)
	byAddress, byCaller := c.anomalyThrottles()
	if byAddress != nil {
		pre = append(pre, byAddress)
	}
	steps := append(pre, policy.LimitBody(api.MaxBody))
	auth := op.Auth
	if auth != nil && !auth.Anonymous {
		var accept []identity.Credential
		// Credentials are tried in a fixed order, whatever the config lists.
		for _, want := range []identity.Credential{identity.CredentialJWT, identity.CredentialAPIKey, identity.CredentialMTLS} {
			for _, name := range auth.Credentials {
				if cr, ok := identity.ParseCredential(name); ok && cr == want {
					accept = append(accept, cr)
				}
			}
		}
		ao := policy.AuthnOptions{
			Accept:           accept,
			Providers:        auth.Issuers,
			Keys:             c.keyLookup(keys),
			APIKeyHeader:     c.snap.settings.apiKeyHeader,
			APIKeyHeaderName: or(c.cfg.APIKeys.Header, config.DefaultAPIKeyHeader),
			Realm:            "gatehouse",
		}
		if c.snap.verifier != nil {
			ao.Tokens = c.snap.verifier
		} else {
			ao.Tokens = offlineVerifier{}
		}
		if m := c.rt.Metrics; m != nil {
			ao.Observe = func(reason string) { m.AuthnFailures.WithLabelValues(reason).Inc() }
		}
		steps = append(steps, c.traced("authenticate", policy.Authenticate(ao)))
		if byCaller != nil {
			steps = append(steps, byCaller)
		}
		if req := compileRequire(auth.Require); req != nil {
			zo := policy.AuthzOptions{Require: *req, Realm: "gatehouse"}
			if op.metrics != nil {
				zo.Observe = op.metrics.Denied
			}
			steps = append(steps, c.traced("authorize", policy.Authorize(zo)))
		}
	}
	steps = append(steps, post...)
	return policy.Chain(terminal, steps...)
}

func compileRequire(r *config.Require) *policy.Requirement {
	if r == nil {
		return nil
	}
	set := func(m *config.Match) policy.SetMatch {
		if m == nil {
			return policy.SetMatch{}
		}
		return policy.SetMatch{AnyOf: m.AnyOf, AllOf: m.AllOf}
	}
	req := &policy.Requirement{Groups: set(r.Groups), Roles: set(r.Roles), Scopes: set(r.Scopes)}
	for _, path := range sortedKeys(r.Claims) {
		req.Claims = append(req.Claims, policy.ClaimMatch{Path: path, SetMatch: set(r.Claims[path])})
	}
	return req
}

// offlineVerifier stands in when compiling without network (validate):
// the snapshot is never served.
type offlineVerifier struct{}

func (offlineVerifier) Verify(context.Context, string) (*identity.Principal, error) {
	return nil, &identity.Error{Reason: identity.ReasonIssuerUnavailable, Detail: "offline"}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
