// Package gateway is the data plane: it compiles a configuration into an
// immutable Snapshot (routes, per-operation step chains, identity
// verifiers, backend pools), swaps snapshots atomically on reload, and
// serves requests: normalize, route, run the operation's chain, proxy.
package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/netip"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gatehouse-dev/gatehouse/internal/anomaly"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/quota"
	"github.com/gatehouse-dev/gatehouse/internal/ratelimit"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// Runtime is the state that outlives snapshots: caches of identity
// provider keys, backend transports, metrics. A reload reuses it, so that
// keys, connections and counters survive.
type Runtime struct {
	Logger     *slog.Logger
	AccessLog  *observe.AccessLog
	Metrics    *observe.Metrics
	KeySets    *identity.KeySets // nil: compile offline (validate only)
	Transports *upstream.Transports
	Upstreams  *upstream.Pools // backend pools; nil only to compile offline (validate)
	Secrets    secret.Resolver
	Now        func() time.Time
	// BackendIdentity holds signing keys, token caches and client
	// certificates; nil compiles offline (validate only).
	BackendIdentity *BackendIdentity

	// Traffic-policy state (docs/policies.md): rate-limit counters and
	// quota counters, kept across reloads. New fills them when nil;
	// DataDir, when set, overrides storage.data_dir.
	RateLimits *ratelimit.Registry
	Quotas     *quota.Registry
	DataDir    string

	// Instances feeds registry-backed backends (nil: static instances only).
	Instances InstanceSource
	// ConsumerKeys finds consumers kept in the store (nil: config only).
	ConsumerKeys HashLookup
	Stats        *observe.Stats   // latency statistics; nil: none
	Tracers      *observe.Tracers // nil: tracing is never on
	// Anomalies follows callers for anomaly detection (nil: none, whatever
	// the configuration says).
	Anomalies *anomaly.Detector
}

// Snapshot is a compiled configuration. It is immutable: a reload builds a
// new one and swaps it in; requests in flight finish on the one they
// started with.
type Snapshot struct {
	// Version identifies the configuration: a hash of its canonical form.
	Version string
	// Doc is the configuration the snapshot was compiled from.
	Doc *config.Document
	// Loaded is when it was compiled.
	Loaded time.Time

	router        *Router
	verifier      *identity.Verifier
	keySets       []*identity.KeySet
	transportKeys map[string]bool
	upstreams     map[string]*upstreamBinding
	certs         map[string]*tls.Certificate
	clientCAs     map[string]*x509.CertPool
	settings      settings
	// notFound collects metrics for requests that match no operation.
	notFound *observe.RouteMetrics
	// backendIdentity is what the snapshot uses of Runtime.BackendIdentity.
	backendIdentity backendIdentityState
	// secrets says which secret files to watch (compile_secrets.go).
	secrets  secretState
	policies policyState

	members []*memberBinding // registry-backed pools (compile_registry.go)
	admin   *AdminAccess     // compile_admin.go
	// observability: see compile_observe.go
	notFoundStats *observe.RouteStats
	operations    []*Operation
	tracer        trace.Tracer // nil when tracing is off
	// anomalies is the compiled anomalies section (nil: detection off).
	anomalies    *anomaly.Policy
	tracerHandle *observe.Tracer
	dashboardCA  dashboardCA

	// commits change run-time state that the snapshot in service shares
	// (a limiter's rate, a key set's refresh): Load runs them once this
	// snapshot is to be served, so that a refused one changes nothing.
	commits []func()
}

type settings struct {
	requestIDHeader string
	requestIDBit    uint64 // h1.NameBit(requestIDHeader)
	// identityPrefix is the canonical header prefix (X-Gatehouse-);
	// identityFold is its folded form for stripping (x-gatehouse-).
	identityPrefix string
	identityFold   string
	apiKeyHeader   string
	apiKeyBit      uint64 // h1.NameBit(apiKeyHeader)
	trusted        []netip.Prefix
	maxURI         int
	paths          PathOptions
	accessLog      bool
	// bodyReadBy is how long after a request's arrival its body may still
	// be read under Go's server at the latest: the read timeout, less the
	// header's (Go's runs from before the head was read); 0 when the read
	// timeout is not longer than the header's, and then no attempt's
	// deadline is earlier.
	bodyReadBy time.Duration
}

// API is a compiled API.
type API struct {
	Name           string
	Backend        string
	MaxBody        int64
	PassCredential bool
	// CaseInsensitivePaths: matched ignoring ASCII case, forwarded lower-cased.
	CaseInsensitivePaths bool
	pool                 *upstream.Pool
}

// Operation is a compiled operation with its ready chain of steps.
type Operation struct {
	API      *API
	Name     string
	Methods  []string
	Template string
	// Auth is the effective auth requirement, as configured.
	Auth *config.Auth
	// ConfigPath is where the operation is configured (apis[0].operations[1]).
	ConfigPath string

	segments   []config.Segment
	paramNames []string
	sensitive  bool        // for the first-access detector
	upstream   *opUpstream // nil: the backend is never called (a mock, a preflight)
	handler    policy.Handler
	metrics    *observe.RouteMetrics
	stats      *observe.RouteStats
}

// Ready reports whether every identity provider's keys have been fetched.
func (s *Snapshot) Ready() bool {
	for _, ks := range s.keySets {
		if !ks.Ready() {
			return false
		}
	}
	return true
}

// KeySets returns the key sets the snapshot's identity providers use.
func (s *Snapshot) KeySets() []*identity.KeySet { return s.keySets }

// ListenerCertificate returns the certificate configured for a listener.
func (s *Snapshot) ListenerCertificate(name string) *tls.Certificate { return s.certs[name] }

// ListenerClientCAs returns the client CA pool of a listener, or nil.
func (s *Snapshot) ListenerClientCAs(name string) *x509.CertPool { return s.clientCAs[name] }
