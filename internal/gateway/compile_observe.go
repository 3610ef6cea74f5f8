package gateway

import (
	"crypto/x509"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

// tracing resolves the tracing settings and gets the tracer of the
// snapshot from the runtime's registry. With tracing off the snapshot has
// no tracer and the request path makes no tracing calls.
func (c *compiler) tracing() {
	t := &c.cfg.Observability.Tracing
	if !t.Enabled {
		return
	}
	o := observe.TracingOptions{
		Endpoint:    t.Endpoint,
		SampleRatio: config.DefaultTraceSampleRatio,
		ServiceName: or(t.ServiceName, config.DefaultTraceServiceName),
		Timeout:     t.Timeout.Or(config.DefaultTraceExportTimeout),
	}
	if t.SampleRatio != nil {
		o.SampleRatio = *t.SampleRatio
	}
	p := "observability.tracing"
	if t.CAFile != "" {
		// Read at every compile, as the other CA bundles are: validate
		// and a reload report an unreadable one; a replaced file makes a
		// new exporter.
		pool, pem, err := loadCAFile(t.CAFile)
		if err != nil {
			c.r.Errorf(config.Field(p, "ca_file"), "%v", err)
			return
		}
		o.RootCAs, o.CAPEM = pool, pem
	}
	for _, name := range sortedKeys(t.Headers) {
		if c.rt.Secrets == nil {
			continue
		}
		v, err := c.secrets.Resolve(c.ctx, t.Headers[name]) // ${vault:...} too, and a file is watched
		if err != nil {
			c.r.Errorf(config.Key(config.Field(p, "headers"), name), "%v", err)
			continue
		}
		if o.Headers == nil {
			o.Headers = map[string]string{}
		}
		o.Headers[name] = v.Reveal()
	}
	if c.rt.Tracers == nil {
		return // compiled offline (validate), or tracing not wired
	}
	tr, err := c.rt.Tracers.Get(o)
	if err != nil {
		c.r.Errorf(config.Field(p, "endpoint"), "%v", err)
		return
	}
	c.snap.tracerHandle = tr
	c.snap.tracer = tr.Tracer()
}

// dashboardSecret resolves the dashboard's client secret, as every secret
// of the compile is (${vault:...} too, a file watched), so that `gatehouse
// validate` reports a missing one and the dashboard sends the value of the
// snapshot being served at each sign-in.
func (c *compiler) dashboardSecret() {
	o := c.cfg.Observability.Dashboard.OIDC
	if o == nil || o.ClientSecret.IsZero() || c.rt.Secrets == nil {
		return
	}
	v, err := c.secrets.Resolve(c.ctx, o.ClientSecret)
	if err != nil {
		c.r.Errorf("observability.dashboard.oidc.client_secret", "%v", err)
		return
	}
	c.snap.secrets.dashboard = v
}

// dashboardCA is the dashboard's provider CA bundle as a compile read it.
type dashboardCA struct {
	pool *x509.CertPool
	pem  []byte
}

// dashboardTrust reads the CA bundle of the dashboard's provider
// (observability.dashboard.oidc.ca_file) at every compile, as the
// listeners' and issuers' bundles are read: `gatehouse validate` and a
// reload report an unreadable one with its key, and a reload picks up a
// replaced file.
func (c *compiler) dashboardTrust() {
	o := c.cfg.Observability.Dashboard.OIDC
	if o == nil || o.CAFile == "" {
		return
	}
	pool, pem, err := loadCAFile(o.CAFile)
	if err != nil {
		c.r.Errorf("observability.dashboard.oidc.ca_file", "%v", err)
		return
	}
	c.snap.dashboardCA = dashboardCA{pool: pool, pem: pem}
}

// DashboardCA returns the pool of the dashboard's provider CA bundle and
// the bundle's bytes, as this snapshot read them; nil without ca_file.
func (s *Snapshot) DashboardCA() (*x509.CertPool, []byte) {
	return s.dashboardCA.pool, s.dashboardCA.pem
}

// observeOperation resolves the run-time statistics of an operation and
// records where it was configured. path is the operation's config path
// (apis[0].operations[1], or apis[0] for an API without operations).
func (c *compiler) observeOperation(path string, op *Operation) {
	op.ConfigPath = path
	c.snap.operations = append(c.snap.operations, op)
	if c.rt.Stats != nil {
		op.stats = c.rt.Stats.Route(op.API.Name, op.Name)
	}
}

// traced wraps a policy step so that its decision becomes an event on the
// request's span. Without a tracer it returns the step unchanged.
func (c *compiler) traced(name string, s policy.Step) policy.Step {
	if c.snap.tracer == nil {
		return s
	}
	bit, ok := c.stepBits[name]
	if !ok {
		bit = uint32(1) << (len(c.stepBits) % 32)
		if c.stepBits == nil {
			c.stepBits = map[string]uint32{}
		}
		c.stepBits[name] = bit
	}
	return tracedStep(name, bit, s)
}

// traceTransport wraps a backend's transport with a client span per
// upstream attempt. Without a tracer it returns the transport unchanged.
func (c *compiler) traceTransport(be *backend, name string) http.RoundTripper {
	if c.snap.tracer == nil || be.transport == nil {
		return be.transport
	}
	return &tracedTransport{next: be.transport, tracer: c.snap.tracer, spanName: "upstream " + name, backend: name}
}

// Operations returns every compiled operation, in configuration order.
func (s *Snapshot) Operations() []*Operation { return s.operations }

// Tracing reports whether the snapshot records spans.
func (s *Snapshot) Tracing() bool { return s.tracer != nil }

// releaseObserve drops statistics of operations that keep no longer has
// and shuts down a tracer provider it no longer uses.
func (g *Gateway) releaseObserve(keep *Snapshot) {
	if keep == nil {
		return
	}
	if g.rt.Stats != nil {
		stats := make([]*observe.RouteStats, 0, len(keep.operations)+1)
		for _, op := range keep.operations {
			stats = append(stats, op.stats)
		}
		stats = append(stats, keep.notFoundStats)
		g.rt.Stats.Retain(stats)
	}
	if g.rt.Tracers != nil {
		g.rt.Tracers.Retain(keep.tracerHandle)
	}
}
