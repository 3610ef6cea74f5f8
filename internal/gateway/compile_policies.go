package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/quota"
	"github.com/gatehouse-dev/gatehouse/internal/ratelimit"
)

// policyState is what a snapshot uses of the run-time policy registries,
// so that a reload can drop the rest.
type policyState struct {
	rateIDs  map[ratelimit.ID]bool
	quotaIDs map[quota.ID]bool
}

// policyCompiler holds what the traffic policies of one compile share.
type policyCompiler struct {
	rates      *ratelimit.Registry
	quotas     *quota.Registry
	quotasOpen bool
	cors       map[*config.API]policy.Step
	openapi    map[*config.API]*openAPIDoc
}

func (c *compiler) policies() *policyCompiler {
	if c.pol != nil {
		return c.pol
	}
	pc := &policyCompiler{rates: c.rt.RateLimits, quotas: c.rt.Quotas,
		cors: map[*config.API]policy.Step{}, openapi: map[*config.API]*openAPIDoc{}}
	if pc.rates == nil { // compiling offline (validate): state is thrown away
		pc.rates = ratelimit.NewRegistry()
	}
	if pc.quotas == nil {
		pc.quotas = quota.NewRegistry(c.rt.Logger, c.rt.Now)
		pc.quotasOpen = true // never persisted
	}
	c.snap.policies = policyState{rateIDs: map[ratelimit.ID]bool{}, quotaIDs: map[quota.ID]bool{}}
	c.pol = pc
	return pc
}

// ensurePolicyState gives a runtime its policy registries.
func (rt *Runtime) ensurePolicyState() {
	if rt.RateLimits == nil {
		rt.RateLimits = ratelimit.NewRegistry()
	}
	if rt.Quotas == nil {
		rt.Quotas = quota.NewRegistry(rt.Logger, rt.Now)
	}
}

// releasePolicies drops the limiters and quota counters that keep no
// longer uses.
func (g *Gateway) releasePolicies(keep *Snapshot) {
	if keep == nil || keep.policies.rateIDs == nil {
		return
	}
	g.rt.RateLimits.Retain(keep.policies.rateIDs)
	g.rt.Quotas.Retain(keep.policies.quotaIDs)
}

// configOf returns the API and operation that a chain's path names
// (apis[i] or apis[i].operations[j]).
func (c *compiler) configOf(path string) (*config.API, *config.Operation) {
	var i, j int
	if n, _ := fmt.Sscanf(path, "apis[%d].operations[%d]", &i, &j); n == 2 {
		a := &c.cfg.APIs[i]
		return a, &a.Operations[j]
	}
	if n, _ := fmt.Sscanf(path, "apis[%d]", &i); n == 1 {
		return &c.cfg.APIs[i], nil
	}
	return nil, nil
}

func (c *compiler) observer(api *API, op *Operation, name string) func(string) {
	if c.rt.Metrics == nil {
		return nil
	}
	return c.rt.Metrics.Policy(api.Name, op.Name, name).Observe
}

// policySteps returns an operation's traffic-policy steps: those that run
// before the body limit and authentication (CORS, IP filters), those that
// run after authorization (rate limits, quotas, request validation,
// transforms), and the handler that ends the chain (a mock, or terminal).
func (c *compiler) policySteps(path string, api *API, op *Operation, terminal policy.Handler) (pre, post []policy.Step, end policy.Handler) {
	a, o := c.configOf(path)
	if a == nil {
		return nil, nil, terminal
	}
	pc := c.policies()
	ap := path // the API's path
	if o != nil {
		ap = path[:strings.Index(path, ".operations[")]
	}
	if s := c.corsStep(ap, a, api); s != nil {
		pre = append(pre, s)
	}
	if s := c.ipFilterStep(config.Field(ap, "ip_filter"), a.IPFilter, api, op); s != nil {
		pre = append(pre, s)
	}
	end = terminal
	var opRates []config.RateLimit
	var opQuotas []config.Quota
	if o != nil {
		if s := c.ipFilterStep(config.Field(path, "ip_filter"), o.IPFilter, api, op); s != nil {
			pre = append(pre, s)
		}
		opRates, opQuotas = o.RateLimits, o.Quotas
	}
	if s := c.rateLimitStep(pc, ap, path, a, opRates, api, op); s != nil {
		post = append(post, s)
	}
	if s := c.quotaStep(pc, ap, path, a, opQuotas, api, op); s != nil {
		post = append(post, s)
	}
	if s := c.validateStep(ap, path, a, o, api, op); s != nil {
		post = append(post, s)
	}
	var ot *config.Transforms
	if o != nil {
		ot = o.Transforms
	}
	if s := c.transformStep(path, a.Transforms, ot, op); s != nil {
		post = append(post, s)
	}
	if o != nil && o.Mock != nil {
		if h := c.mockHandler(config.Field(path, "mock"), o.Mock, api, op); h != nil {
			end = h
		}
	}
	return pre, post, end
}

func (c *compiler) ipFilterStep(path string, f *config.IPFilter, api *API, op *Operation) policy.Step {
	if f == nil {
		return nil
	}
	o := policy.IPFilterOptions{Observe: c.observer(api, op, "ip_filter")}
	parse := func(key string, list []string) []netip.Prefix {
		var out []netip.Prefix
		for i, s := range list {
			p, err := config.ParsePrefix(s)
			if err != nil {
				c.r.Errorf(config.Index(config.Field(path, key), i), "%v", err)
				continue
			}
			out = append(out, p)
		}
		return out
	}
	o.Allow, o.Deny = parse("allow", f.Allow), parse("deny", f.Deny)
	return policy.IPFilter(o)
}

func compileKey(parts []string, apiName string) (policy.LimitKey, error) {
	k := policy.LimitKey{API: apiName}
	for _, s := range config.EffectiveKey(parts) {
		kp, err := config.ParseKeyPart(s)
		if err != nil {
			return k, err
		}
		arg := kp.Arg
		if kp.Kind == config.KeyHeader {
			arg = http.CanonicalHeaderKey(arg)
		}
		k.Parts = append(k.Parts, policy.KeyPart{Kind: policy.KeyPartKind(kp.Kind), Arg: arg})
	}
	return k, nil
}

// rateLimitStep compiles the API's limits (shared by its operations) and
// the operation's own (same name: the operation's replaces the API's).
func (c *compiler) rateLimitStep(pc *policyCompiler, apiPath, opPath string, a *config.API, opLimits []config.RateLimit, api *API, op *Operation) policy.Step {
	type src struct {
		l     config.RateLimit
		path  string
		opKey string
	}
	var all []src
	for i, l := range a.RateLimits {
		if slices.ContainsFunc(opLimits, func(x config.RateLimit) bool { return x.Name == l.Name }) {
			continue
		}
		all = append(all, src{l, config.Index(config.Field(apiPath, "rate_limits"), i), ""})
	}
	for i, l := range opLimits {
		all = append(all, src{l, config.Index(config.Field(opPath, "rate_limits"), i), op.Name})
	}
	if len(all) == 0 {
		return nil
	}
	var rules []policy.RateRule
	for _, s := range all {
		key, err := compileKey(s.l.Key, a.Name)
		if err != nil {
			c.r.Errorf(config.Field(s.path, "key"), "%v", err)
			continue
		}
		if s.l.Rate <= 0 || s.l.Period.Duration <= 0 {
			continue // reported by validation
		}
		p := ratelimit.NewParams(s.l.Rate, s.l.Period.Duration, s.l.Burst)
		id := ratelimit.ID{API: a.Name, Operation: s.opKey, Name: s.l.Name, Key: config.KeySpec(s.l.Key)}
		maxKeys := s.l.MaxKeys
		if maxKeys == 0 {
			maxKeys = config.DefaultRateLimitMaxKeys
		}
		lim, apply := pc.rates.PrepareMode(id, p, maxKeys, redisFailureMode(s.l.OnRedisFailure))
		c.onCommit(apply)
		c.snap.policies.rateIDs[id] = true
		rules = append(rules, policy.RateRule{
			Name: s.l.Name, Limiter: lim, Key: key,
			Quota: p.Burst, Window: max(1, int64((p.Window()+time.Second-1)/time.Second)),
		})
	}
	// Now is nil unless the runtime has a clock of its own (tests): the
	// step then counts a request at its arrival (Exchange.Start) instead
	// of reading the clock again.
	return policy.RateLimit(policy.RateLimitOptions{Rules: rules, Now: c.rt.Now, Observe: c.observer(api, op, "rate_limit")})
}

// redisFailureMode maps a limit's on_redis_failure to its mode
// ("": storage.redis.on_failure's).
func redisFailureMode(s string) ratelimit.FailureMode {
	switch s {
	case config.RedisOnFailureDeny:
		return ratelimit.FailClosed
	case config.RedisOnFailureLocal:
		return ratelimit.FailLocal
	case config.RedisOnFailureAllow:
		return ratelimit.FailOpen
	}
	return ratelimit.FailDefault
}

func (c *compiler) quotaStep(pc *policyCompiler, apiPath, opPath string, a *config.API, opQuotas []config.Quota, api *API, op *Operation) policy.Step {
	type src struct {
		q     config.Quota
		path  string
		opKey string
	}
	var all []src
	for i, q := range a.Quotas {
		if slices.ContainsFunc(opQuotas, func(x config.Quota) bool { return x.Name == q.Name }) {
			continue
		}
		all = append(all, src{q, config.Index(config.Field(apiPath, "quotas"), i), ""})
	}
	for i, q := range opQuotas {
		all = append(all, src{q, config.Index(config.Field(opPath, "quotas"), i), op.Name})
	}
	if len(all) == 0 {
		return nil
	}
	c.openQuotaStore(pc)
	var rules []policy.QuotaRule
	for _, s := range all {
		key, err := compileKey(s.q.Key, a.Name)
		if err != nil {
			c.r.Errorf(config.Field(s.path, "key"), "%v", err)
			continue
		}
		period, err := quota.ParsePeriod(s.q.Period)
		if err != nil {
			continue // reported by validation
		}
		tz := s.q.TimeZone
		if tz == "" {
			tz = config.DefaultQuotaTimeZone
		}
		loc, err := time.LoadLocation(tz)
		if err != nil || tz == "Local" {
			c.r.Errorf(config.Field(s.path, "time_zone"), "unknown IANA time zone %q (e.g. UTC, Europe/Paris, America/New_York)", tz)
			continue
		}
		maxKeys := s.q.MaxKeys
		if maxKeys == 0 {
			maxKeys = config.DefaultQuotaMaxKeys
		}
		id := quota.ID{API: a.Name, Operation: s.opKey, Name: s.q.Name, Key: config.KeySpec(s.q.Key)}
		counter, apply := pc.quotas.Prepare(id, quota.Params{Limit: s.q.Limit, Period: period, Location: loc, MaxKeys: maxKeys})
		c.onCommit(apply)
		c.snap.policies.quotaIDs[id] = true
		rules = append(rules, policy.QuotaRule{Name: s.q.Name, Counter: counter, Key: key, Limit: s.q.Limit, Location: loc})
	}
	return policy.Quotas(policy.QuotaOptions{Rules: rules, Now: c.rt.Now, Observe: c.observer(api, op, "quota")})
}

// openQuotaStore opens the quota file in the data directory, once.
func (c *compiler) openQuotaStore(pc *policyCompiler) {
	if pc.quotasOpen {
		return
	}
	pc.quotasOpen = true
	dir := c.rt.DataDir
	if dir == "" {
		dir = c.cfg.Storage.DataDir
	}
	if dir == "" {
		dir = config.DefaultDataDir
	}
	ok, err := pc.quotas.Open(dir)
	if err != nil {
		c.r.Errorf("storage.data_dir", "quota counters cannot be kept in %s: %v", dir, err)
		return
	}
	if !ok && c.rt.Logger != nil {
		c.rt.Logger.Warn("storage.data_dir changed; quota counters stay in the old directory until the next restart")
	}
}

func (c *compiler) corsStep(apiPath string, a *config.API, api *API) policy.Step {
	if a.CORS == nil {
		return nil
	}
	pc := c.policies()
	if s, ok := pc.cors[a]; ok {
		return s
	}
	cf := a.CORS
	o := policy.CORSOptions{
		Credentials: cf.AllowCredentials,
		Expose:      cf.ExposeHeaders,
		MaxAge:      int(cf.MaxAge.Or(config.DefaultCORSMaxAge) / time.Second),
	}
	for i, origin := range cf.AllowOrigins {
		switch {
		case origin == "*":
			o.AnyOrigin = true
		case strings.Contains(origin, "://*."):
			scheme, rest, _ := strings.Cut(origin, "://*")
			host, port := rest, ""
			if j := strings.LastIndexByte(rest, ':'); j >= 0 {
				host, port = rest[:j], rest[j+1:]
			}
			o.Patterns = append(o.Patterns, policy.OriginPattern{Scheme: scheme, Suffix: host, Port: port})
		default:
			if err := config.CheckOrigin(origin); err != nil {
				c.r.Errorf(config.Index(config.Field(apiPath, "cors.allow_origins"), i), "%v", err)
			}
			o.Origins = append(o.Origins, origin)
		}
	}
	o.Methods = cf.AllowMethods
	if len(o.Methods) == 0 {
		o.Methods = corsDefaultMethods(a)
	}
	for _, h := range cf.AllowHeaders {
		if h == "*" {
			o.AnyHeader = true
			continue
		}
		o.Headers = append(o.Headers, strings.ToLower(h))
	}
	if c.rt.Metrics != nil {
		o.Observe = c.rt.Metrics.Policy(api.Name, "", "cors").Observe
	}
	s := policy.CORS(o)
	pc.cors[a] = s
	return s
}

// corsDefaultMethods are the methods of the API's operations, or the
// common ones for an API without operations.
func corsDefaultMethods(a *config.API) []string {
	if len(a.Operations) == 0 {
		return []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
	}
	set := map[string]bool{}
	for i := range a.Operations {
		for _, m := range a.Operations[i].OperationMethods() {
			set[m] = true
			if m == "GET" {
				set["HEAD"] = true
			}
		}
	}
	return sortedKeys(set)
}

// corsPreflightOps adds, for an API with CORS, an OPTIONS operation to
// every path template that has none, so that preflights reach the CORS
// step instead of the router's 405. Such an operation answers a request
// that is not a preflight with 405, as before.
func (c *compiler) corsPreflightOps(apiPath string, a *config.API, api *API, ops []*Operation) []*Operation {
	if a.CORS == nil || len(ops) == 0 {
		return ops
	}
	type group struct {
		first   *Operation
		methods map[string]bool
	}
	groups := map[string]*group{}
	var order []string
	for _, op := range ops {
		shape := config.TemplateShape(op.segments)
		g := groups[shape]
		if g == nil {
			g = &group{first: op, methods: map[string]bool{}}
			groups[shape] = g
			order = append(order, shape)
		}
		for _, m := range op.Methods {
			g.methods[m] = true
			if m == "GET" {
				g.methods["HEAD"] = true
			}
		}
	}
	cors := c.corsStep(apiPath, a, api)
	for _, shape := range order {
		g := groups[shape]
		if g.methods["OPTIONS"] {
			continue
		}
		allow := sortedKeys(g.methods)
		op := &Operation{
			API:        api,
			Name:       "OPTIONS " + g.first.Template,
			Methods:    []string{"OPTIONS"},
			Template:   g.first.Template,
			segments:   g.first.segments,
			paramNames: g.first.paramNames,
		}
		if c.rt.Metrics != nil {
			op.metrics = c.rt.Metrics.Route(api.Name, op.Name)
		}
		notAllowed := policy.MethodNotAllowed(strings.Join(allow, ", "))
		op.handler = policy.Chain(policy.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
			return notAllowed
		}), cors)
		ops = append(ops, op)
	}
	return ops
}

// transformStep merges the API's transforms and the operation's: header
// changes of both apply (the API's first), the operation's path change
// replaces the API's.
func (c *compiler) transformStep(opPath string, at, ot *config.Transforms, op *Operation) policy.Step {
	if at == nil && ot == nil {
		return nil
	}
	var o policy.TransformOptions
	for _, t := range []*config.Transforms{at, ot} {
		if t == nil {
			continue
		}
		o.RequestHeaders = appendHeaderOps(o.RequestHeaders, t.RequestHeaders)
		o.ResponseHeaders = appendHeaderOps(o.ResponseHeaders, t.ResponseHeaders)
	}
	switch {
	case ot != nil && ot.Path != "":
		segs, err := config.ParseTemplate(ot.Path)
		if err != nil {
			c.r.Errorf(config.Field(opPath, "transforms.path"), "%v", err)
			return nil
		}
		o.Rewrite = []policy.PathPart{}
		for _, s := range segs {
			if s.Kind == config.Literal {
				o.Rewrite = append(o.Rewrite, policy.PathPart{Literal: s.Value})
				continue
			}
			idx := slices.Index(op.paramNames, s.Value)
			if idx < 0 {
				c.r.Errorf(config.Field(opPath, "transforms.path"), "{%s} is not a parameter of the operation's path", s.Value)
				return nil
			}
			o.Rewrite = append(o.Rewrite, policy.PathPart{IsParam: true, Param: idx, CatchAll: s.Kind == config.CatchAll})
		}
	case ot != nil && ot.StripPrefix != "":
		o.StripPrefix = config.NormalizePrefix(ot.StripPrefix)
	case at != nil && at.StripPrefix != "":
		o.StripPrefix = config.NormalizePrefix(at.StripPrefix)
	}
	return policy.Transform(o)
}

func appendHeaderOps(ops []policy.HeaderOp, h *config.HeaderOps) []policy.HeaderOp {
	if h == nil {
		return ops
	}
	for _, name := range h.Remove {
		ops = append(ops, policy.HeaderOp{Kind: policy.HeaderRemove, Name: http.CanonicalHeaderKey(name)})
	}
	for _, name := range sortedKeys(h.Set) {
		ops = append(ops, policy.HeaderOp{Kind: policy.HeaderSet, Name: http.CanonicalHeaderKey(name), Value: h.Set[name]})
	}
	for _, name := range sortedKeys(h.Append) {
		ops = append(ops, policy.HeaderOp{Kind: policy.HeaderAppend, Name: http.CanonicalHeaderKey(name), Value: h.Append[name]})
	}
	return ops
}

func (c *compiler) mockHandler(path string, m *config.Mock, api *API, op *Operation) policy.Handler {
	body := []byte(m.Body)
	if m.BodyFile != "" {
		st, err := os.Stat(m.BodyFile)
		if err == nil && st.Size() > config.MaxMockBody {
			c.r.Errorf(config.Field(path, "body_file"), "%s is larger than %d bytes", m.BodyFile, config.MaxMockBody)
			return nil
		}
		body, err = os.ReadFile(m.BodyFile)
		if err != nil {
			c.r.Errorf(config.Field(path, "body_file"), "%v", cleanFileError(err))
			return nil
		}
	}
	h := http.Header{}
	for _, name := range sortedKeys(m.Headers) {
		h[http.CanonicalHeaderKey(name)] = []string{m.Headers[name]}
	}
	if _, ok := h["Content-Type"]; !ok && len(body) > 0 {
		if json.Valid(body) {
			h["Content-Type"] = []string{"application/json"}
		} else {
			h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		}
	}
	status := m.Status
	if status == 0 {
		status = config.DefaultMockStatus
	}
	return policy.Mock(policy.MockOptions{Status: status, Header: h, Body: body, Observe: c.observer(api, op, "mock")})
}
