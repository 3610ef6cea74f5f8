package config

// Config is the whole declarative configuration of a gateway, as written in
// YAML. It is plain data: it is decoded and validated here and compiled into a
// run-time snapshot by package gateway. Nothing in it is used on the request
// path.
type Config struct {
	Server            Server             `yaml:"server" jsonschema_description:"Listeners, timeouts, limits and request handling shared by every API."`
	IdentityProviders []IdentityProvider `yaml:"identity_providers" jsonschema_description:"Issuers of bearer JWTs that the gateway trusts."`
	APIKeys           APIKeys            `yaml:"api_keys" jsonschema_description:"How API keys are presented."`
	Consumers         []Consumer         `yaml:"consumers" jsonschema_description:"Callers that authenticate with API keys."`
	Backends          []Backend          `yaml:"backends" jsonschema_description:"Upstream services and their instances."`
	APIs              []API              `yaml:"apis" jsonschema_description:"Routes from host and path to a backend, with their auth requirements."`
	Storage           Storage            `yaml:"storage" jsonschema_description:"Where run-time state (quota counters, registrations, keys, the audit log, signing keys) is kept."`
	BackendIdentity   *BackendIdentity   `yaml:"backend_identity" jsonschema_description:"The gateway's own identity towards backends: issuer, signing keys, rotation. See docs/backend-identity.md."`
	Secrets           Secrets            `yaml:"secrets" jsonschema_description:"Secret stores for ${vault:...} references. See docs/secrets.md."`

	Registry      Registry      `yaml:"registry" jsonschema_description:"Service registration through the admin API: which addresses may be registered, TTLs."`
	Observability Observability `yaml:"observability" jsonschema_description:"Traces and the dashboard."`
	Anomalies     Anomalies     `yaml:"anomalies" jsonschema_description:"Anomaly detection: rate spikes against a caller's own baseline, bursts of refused credentials, enumeration, first access to sensitive operations; each logged, audited and shown on the dashboard, and optionally throttled. Off by default. See docs/anomalies.md."`
}

// Server holds the settings of the gateway process itself.
type Server struct {
	Listeners       []Listener      `yaml:"listeners" jsonschema_description:"Public listeners. Default: one HTTP listener on :8080."`
	Admin           Admin           `yaml:"admin" jsonschema_description:"The admin listener (metrics, health)."`
	Timeouts        ServerTimeouts  `yaml:"timeouts" jsonschema_description:"How long clients may take; fixed at start."`
	Limits          Limits          `yaml:"limits" jsonschema_description:"Size limits on requests."`
	TrustedProxies  []string        `yaml:"trusted_proxies" jsonschema_description:"CIDRs of proxies whose X-Forwarded-For is believed. Default: none."`
	RequestID       RequestID       `yaml:"request_id" jsonschema_description:"Correlation IDs."`
	IdentityHeaders IdentityHeaders `yaml:"identity_headers" jsonschema_description:"Headers that carry the verified identity to backends."`
	AccessLog       AccessLog       `yaml:"access_log" jsonschema_description:"The access log (one JSON line per request on stdout)."`
	Paths           Paths           `yaml:"paths" jsonschema_description:"Request path normalization."`
}

// Storage says where run-time state lives.
type Storage struct {
	DataDir  string           `yaml:"data_dir" jsonschema_description:"Directory for the embedded store. Default ./gatehouse-data (relative to the working directory); created if missing. With storage.postgres it still holds the backend signing keys."`
	Postgres *PostgresStorage `yaml:"postgres" jsonschema_description:"Keep registrations, consumers and their keys, quota counters, configuration revisions and the audit log in PostgreSQL instead of the embedded store, so that several gateways share them. Fixed at start. See docs/cluster.md."`
	Redis    *RedisStorage    `yaml:"redis" jsonschema_description:"Keep rate-limit buckets in Redis, shared by every gateway that uses it, instead of in each gateway's memory. Fixed at start. See docs/cluster.md."`
}

// RedisStorage is a Redis server that holds the rate-limit buckets.
type RedisStorage struct {
	URL      string   `yaml:"url" jsonschema:"required" jsonschema_description:"redis://host:6379/0, or rediss:// for TLS. No password here: give it in password."`
	Password Secret   `yaml:"password" jsonschema_description:"The password (AUTH), as a reference: ${env:NAME} or ${file:/path}."`
	Timeout  Duration `yaml:"timeout" jsonschema_description:"How long one rate-limit decision may wait for Redis; past it, or with Redis down, on_failure decides. Default 100ms; between 1ms and 10s."`
	// Cluster: the URL names a node of a Redis Cluster.
	Cluster bool `yaml:"cluster" jsonschema_description:"The URL names a node of a Redis Cluster (more with ?addr=host:port&addr=…); the client learns the others and follows the slots, so each bucket lives on the node of its key. Database 0 only. Default false: one server."`
	// SentinelMaster: the URL names a Redis Sentinel.
	SentinelMaster   string `yaml:"sentinel_master" jsonschema_description:"The URL names a Redis Sentinel (more with ?addr=host:port&addr=…) that monitors the primary of this name: the client asks the Sentinels where the primary is and follows a failover. password is the primary's."`
	SentinelPassword Secret `yaml:"sentinel_password" jsonschema_description:"The Sentinels' own password (their requirepass), as a reference: ${env:NAME} or ${file:/path}."`
	// TLS configures a rediss:// connection.
	TLS *RedisTLS `yaml:"tls" jsonschema_description:"Certificates for a rediss:// URL: the CA that signs the server's certificate (default the system roots), the name to verify, and a client certificate for a server that requires one. The files are read again before each new connection when they changed, so a rotation needs no restart."`
	// OnFailure is what a rate-limit decision does when Redis fails.
	OnFailure string `yaml:"on_failure" jsonschema:"enum=deny,enum=local,enum=allow" jsonschema_description:"When Redis is down or slower than timeout: deny refuses the request with 503 rate_limit_unavailable (the limit is never exceeded); local decides in this gateway's memory with the same limit (each gateway then allows up to the limit on its own); allow lets the request through unchecked (no limit at all meanwhile; counted in gatehouse_ratelimit_redis_failures_total and _skipped_total). After three failed decisions in a row, decisions stop asking Redis, and a probe asks it every second until it answers. Default deny."`
}

// RedisTLS configures TLS towards Redis (a rediss:// URL).
type RedisTLS struct {
	CAFile         string `yaml:"ca_file" jsonschema_description:"PEM CA bundle the server's certificate must chain to; default the system roots."`
	ServerName     string `yaml:"server_name" jsonschema_description:"Name to verify in the server's certificate; default the URL's host."`
	ClientCertFile string `yaml:"client_cert_file" jsonschema_description:"PEM client certificate chain, for a server with tls-auth-clients."`
	ClientKeyFile  string `yaml:"client_key_file" jsonschema_description:"PEM private key of client_cert_file."`
}

// PostgresStorage is a PostgreSQL store shared by several gateways.
type PostgresStorage struct {
	URL          string   `yaml:"url" jsonschema:"required" jsonschema_description:"postgres://user@host:5432/database?sslmode=verify-full (libpq's parameters, PGHOST and the other PG* variables apply). No password here: give it in password, or by PGPASSWORD or ~/.pgpass."`
	Password     Secret   `yaml:"password" jsonschema_description:"The password, as a reference: ${env:NAME} or ${file:/path}."`
	Schema       string   `yaml:"schema" jsonschema_description:"The schema Gatehouse's tables live in; created if missing. Default gatehouse."`
	SyncInterval Duration `yaml:"sync_interval" jsonschema_description:"How often each gateway reads back what the others changed (registrations, published signing keys) and adds its quota counts to the shared ones. Default 2s; between 100ms and 1m."`
}

// Listener is one public listening socket.
type Listener struct {
	Name    string       `yaml:"name" jsonschema_description:"A unique name, used in logs and metrics."`
	Address string       `yaml:"address" jsonschema:"required" jsonschema_description:"host:port to listen on, e.g. \":8080\" or \"127.0.0.1:8443\"."`
	TLS     *ListenerTLS `yaml:"tls" jsonschema_description:"Serve HTTPS (with HTTP/2) instead of plain HTTP."`
}

// ListenerTLS configures HTTPS on a listener.
type ListenerTLS struct {
	CertFile     string `yaml:"cert_file" jsonschema:"required" jsonschema_description:"PEM certificate chain."`
	KeyFile      string `yaml:"key_file" jsonschema:"required" jsonschema_description:"PEM private key."`
	ClientCAFile string `yaml:"client_ca_file" jsonschema_description:"PEM CA bundle; when set, client certificates signed by it are verified and usable as the mtls credential."`
	MinVersion   string `yaml:"min_version" jsonschema:"enum=1.2,enum=1.3" jsonschema_description:"Minimum TLS version. Default 1.2."`
}

// Admin configures the admin listener.
type Admin struct {
	Address string `yaml:"address" jsonschema_description:"host:port of the admin listener. Default 127.0.0.1:9901; keep it on loopback or a private network."`

	AdminAccess `yaml:",inline"`
}

// ServerTimeouts bound how long a client may take.
type ServerTimeouts struct {
	ReadHeader Duration `yaml:"read_header" jsonschema_description:"Time to read request headers. Default 10s."`
	Read       Duration `yaml:"read" jsonschema_description:"Time to read the whole request, body included. Default 60s."`
	Write      Duration `yaml:"write" jsonschema_description:"Time from the end of the request headers to the end of the response. Default 60s; 0 disables (needed for long streams)."`
	Idle       Duration `yaml:"idle" jsonschema_description:"Keep-alive idle time. Default 120s."`
	Shutdown   Duration `yaml:"shutdown" jsonschema_description:"On SIGTERM, how long in-flight requests may take to finish. Default 30s."`
}

// Limits are size limits applied before a request reaches any API.
type Limits struct {
	MaxHeaderBytes Size `yaml:"max_header_bytes" jsonschema_description:"Maximum size of the request line and headers. Default 64KiB."`
	MaxBody        Size `yaml:"max_body" jsonschema_description:"Default maximum request body for APIs that do not set one. Default 10MiB."`
	MaxURI         Size `yaml:"max_uri" jsonschema_description:"Maximum length of the request target. Default 8KiB."`
	MaxConnections int  `yaml:"max_connections" jsonschema_description:"Most client connections open at once, on all public listeners together (a WebSocket or HTTP/2 connection counts once); beyond it, a new connection waits, unserved, and the next ones wait in the kernel's accept queue, until one closes. Default: half of the process's open-file limit less 512, at least 64 and at most 1048576 (a proxied connection holds two descriptors, the client's and the backend's). Fixed at start."`
}

// RequestID configures correlation IDs.
type RequestID struct {
	Header string `yaml:"header" jsonschema_description:"Header that carries the request ID in and out. Default X-Request-ID. Not a field that frames or routes the message (Host, Content-Length, Transfer-Encoding, Connection and the other hop-by-hop fields) nor one the gateway sets itself (Traceparent, X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto)."`
}

// IdentityHeaders configures the headers that carry the verified identity to backends.
type IdentityHeaders struct {
	Prefix string `yaml:"prefix" jsonschema_description:"Prefix of the identity headers sent to backends. Default X-Gatehouse-. Every incoming header with this prefix (in any case, with _ or . for -) is removed."`
}

// AccessLog configures the per-request log line.
type AccessLog struct {
	Disabled bool `yaml:"disabled" jsonschema_description:"Turn the access log off."`
}

// Paths configures request path normalization.
type Paths struct {
	AllowSemicolon bool `yaml:"allow_semicolon" jsonschema_description:"Accept ';' in paths. Default false: a ';' is rejected with 400, because some backends treat it as a path-parameter separator and would see a different path from the one authorized."`
	KeepSlashes    bool `yaml:"keep_slashes" jsonschema_description:"Do not merge repeated slashes. Default false: '//' becomes '/'."`
}

// IdentityProvider is one trusted issuer of bearer JWTs.
type IdentityProvider struct {
	Name         string       `yaml:"name" jsonschema:"required" jsonschema_description:"A unique name that auth requirements refer to."`
	Issuer       string       `yaml:"issuer" jsonschema:"required" jsonschema_description:"The exact iss claim. Unless jwks_url is set, OIDC discovery is read from issuer + /.well-known/openid-configuration."`
	JWKSURL      string       `yaml:"jwks_url" jsonschema_description:"Explicit JWKS URL; skips discovery."`
	Audiences    []string     `yaml:"audiences" jsonschema:"required" jsonschema_description:"Accepted aud values; a token must carry at least one."`
	Algorithms   []string     `yaml:"algorithms" jsonschema_description:"Accepted signing algorithms. Default [RS256]. Never 'none' or an HMAC algorithm."`
	ClockSkew    Duration     `yaml:"clock_skew" jsonschema_description:"Leeway for exp, nbf and iat. Default 30s; at most 5m."`
	RequireType  string       `yaml:"require_type" jsonschema_description:"When set, the JWT typ header must equal it (e.g. at+jwt, RFC 9068)."`
	MaxTokenSize Size         `yaml:"max_token_size" jsonschema_description:"Largest accepted token. Default 8KiB."`
	Claims       ClaimMapping `yaml:"claims" jsonschema_description:"Where subject, groups, roles and scopes are in the token's claims."`
	JWKS         JWKSOptions  `yaml:"jwks" jsonschema_description:"The key cache of this issuer."`
	CAFile       string       `yaml:"ca_file" jsonschema_description:"PEM CA bundle for the issuer's TLS; default the system roots."`
}

// ClaimMapping says where identity attributes are in a token's claims.
// Paths are dot-separated (realm_access.roles); a value may be an array of
// strings or one string, which is one value (a group "x admins" is not
// "admins"), except the scopes' string, which is space-separated.
type ClaimMapping struct {
	Subject string `yaml:"subject" jsonschema_description:"Claim holding the subject. Default sub."`
	Groups  string `yaml:"groups" jsonschema_description:"Claim holding the groups. Default groups."`
	Roles   string `yaml:"roles" jsonschema_description:"Claim holding the roles. Default roles."`
	Scopes  string `yaml:"scopes" jsonschema_description:"Claim holding the scopes. Default scope (and scp when scope is absent)."`
}

// JWKSOptions tune the key cache of an issuer.
type JWKSOptions struct {
	RefreshInterval Duration `yaml:"refresh_interval" jsonschema_description:"How often keys are refetched in the background. Default 1h."`
	Cooldown        Duration `yaml:"cooldown" jsonschema_description:"Minimum time between fetches caused by a token the cached keys cannot verify (an unknown kid, or a signature no cached key verifies). Default 30s."`
	Timeout         Duration `yaml:"timeout" jsonschema_description:"Timeout of one discovery or JWKS request. Default 5s."`
}

// APIKeys configures how API keys are presented.
type APIKeys struct {
	Header string `yaml:"header" jsonschema_description:"Request header carrying the API key. Default X-API-Key. Not a field with a meaning of its own (Host, Authorization, Cookie, framing and hop-by-hop fields) nor one the gateway sets, forwards or logs (the request ID's header, Traceparent, X-Forwarded-*, Forwarded, the identity headers)."`
}

// Consumer is a caller identified by API keys.
type Consumer struct {
	Name   string       `yaml:"name" jsonschema:"required" jsonschema_description:"Unique name; it becomes the subject and the consumer of the principal."`
	Groups []string     `yaml:"groups" jsonschema_description:"Groups granted to this consumer."`
	Roles  []string     `yaml:"roles" jsonschema_description:"Roles granted to this consumer."`
	Scopes []string     `yaml:"scopes" jsonschema_description:"Scopes granted to this consumer."`
	Keys   ConsumerKeys `yaml:"keys" jsonschema:"required" jsonschema_description:"A primary and a secondary key, so that one can be replaced while the other keeps working."`
}

// ConsumerKeys are the two keys of a consumer, so that one can be replaced
// while the other keeps working.
type ConsumerKeys struct {
	Primary   *APIKey `yaml:"primary" jsonschema_description:"The primary key."`
	Secondary *APIKey `yaml:"secondary" jsonschema_description:"The secondary key."`
}

// APIKey is one key, given either as its hash or as a secret reference to the
// plain key (which is hashed when the config is compiled).
type APIKey struct {
	SHA256 string `yaml:"sha256" jsonschema_description:"Hex SHA-256 of the key, as printed by 'gatehouse keys generate' or 'gatehouse keys hash'."`
	Value  Secret `yaml:"value" jsonschema_description:"A reference to the plain key (${env:NAME} or ${file:PATH}); hashed at load."`
}

// Backend is an upstream service.
type Backend struct {
	Name                    string          `yaml:"name" jsonschema:"required" jsonschema_description:"A unique name that APIs refer to."`
	Instances               []Instance      `yaml:"instances" jsonschema_description:"Static instances."`
	TLS                     *BackendTLS     `yaml:"tls" jsonschema_description:"TLS settings for https instances."`
	Timeouts                BackendTimeouts `yaml:"timeouts" jsonschema_description:"Upstream timeouts."`
	MaxIdleConnsPerInstance int             `yaml:"max_idle_conns_per_instance" jsonschema_description:"Idle keep-alive connections kept per instance. Default 256."`

	// Identity is set by backend identity (docs/backend-identity.md).
	Identity *BackendIdentityConfig `yaml:"identity" jsonschema_description:"Credentials the gateway presents to this backend. See docs/backend-identity.md."`
	Registry *BackendRegistry       `yaml:"registry" jsonschema_description:"Also take instances registered at run time through the admin API."`
	// Upstream resilience (types_upstream.go, docs/traffic.md).
	LoadBalancing         *LoadBalancing    `yaml:"load_balancing" jsonschema_description:"How requests are spread over the instances. Default round_robin."`
	HealthCheck           *HealthCheck      `yaml:"health_check" jsonschema_description:"Active health check. Default none: instances are healthy unless ejected."`
	OutlierDetection      *OutlierDetection `yaml:"outlier_detection" jsonschema_description:"Passive ejection of failing instances. On by default."`
	CircuitBreaker        *CircuitBreaker   `yaml:"circuit_breaker" jsonschema_description:"Circuit breaker on the failure ratio. Default none."`
	MaxConcurrentRequests int               `yaml:"max_concurrent_requests" jsonschema_description:"Requests in flight to the backend at once; excess requests get 503. Default 0: no limit."`
	Retries               *Retries          `yaml:"retries" jsonschema_description:"Retry policy. Default: 2 retries of idempotent requests after connect failures."`
}

// Instance is one static backend instance.
type Instance struct {
	URL string `yaml:"url" jsonschema:"required" jsonschema_description:"http:// or https:// base URL (scheme, host and port; a path is not allowed)."`

	Weight int `yaml:"weight" jsonschema_description:"Relative share of traffic for weighted, least_requests and consistent_hash balancing, 1-100. Default 1."`
}

// BackendTLS configures TLS towards a backend.
type BackendTLS struct {
	CAFile     string `yaml:"ca_file" jsonschema_description:"PEM CA bundle that backend certificates must chain to; default the system roots."`
	ServerName string `yaml:"server_name" jsonschema_description:"Name to verify in the backend certificate; default the instance host."`

	// Client certificate for mTLS to the backend (docs/backend-identity.md).
	ClientCertFile string `yaml:"client_cert_file" jsonschema_description:"PEM client certificate chain presented to the backend (mTLS); reloaded when the file changes."`
	ClientKeyFile  string `yaml:"client_key_file" jsonschema_description:"PEM private key of client_cert_file; reloaded when the file changes."`
}

// BackendTimeouts bound the time spent on an upstream.
type BackendTimeouts struct {
	Dial           Duration `yaml:"dial" jsonschema_description:"TCP connect timeout. Default 5s."`
	ResponseHeader Duration `yaml:"response_header" jsonschema_description:"Time to wait for the response headers after the request is sent. Default 30s. It may fire up to 1/32 of it late (a kept connection keeps its timer)."`
	TunnelIdle     Duration `yaml:"tunnel_idle" jsonschema_description:"Longest time an upgraded connection (a WebSocket) may carry nothing in either direction; then both sides are closed. Default 1h; 0 disables."`
	ResponseIdle   Duration `yaml:"response_idle" jsonschema_description:"Longest wait for more of a response body once its headers arrived: when the backend sends nothing for this long, the response is cut off (the client's connection is aborted, as when a backend dies mid-body, and the access line says why). The time between two reads, not the body's whole time; it may fire up to 1/32 of it late. Default 60s; 0 disables (for streams that may stay silent longer). An upgraded (WebSocket) connection is not bounded by it."`
}

// API maps a host and path prefix to a backend.
type API struct {
	Name           string      `yaml:"name" jsonschema:"required" jsonschema_description:"A unique name, used in logs and metrics."`
	Hosts          []string    `yaml:"hosts" jsonschema_description:"Host names this API answers (exact, or *.example.com). Default: any host."`
	PathPrefix     string      `yaml:"path_prefix" jsonschema_description:"Path prefix, matched at a segment boundary. Default /."`
	Backend        string      `yaml:"backend" jsonschema:"required" jsonschema_description:"Name of a backend."`
	MaxBody        Size        `yaml:"max_body" jsonschema_description:"Maximum request body; larger requests get 413. Default server.limits.max_body."`
	PassCredential bool        `yaml:"pass_credential" jsonschema_description:"Forward the caller's Authorization or API key header. Default false: it is removed."`
	Auth           *Auth       `yaml:"auth" jsonschema_description:"Auth requirement for every operation that does not set its own."`
	Sensitive      bool        `yaml:"sensitive" jsonschema_description:"Every operation of the API is sensitive: with anomalies.enabled, a caller's first request to each is flagged (anomalies.first_access)."`
	Operations     []Operation `yaml:"operations" jsonschema_description:"Allowed operations. When empty, every method and path under the prefix is routed with the API's auth."`

	// Traffic policies (docs/policies.md).
	RateLimits           []RateLimit       `yaml:"rate_limits" jsonschema_description:"Rate limits shared by every operation of the API."`
	Quotas               []Quota           `yaml:"quotas" jsonschema_description:"Calendar quotas shared by every operation of the API."`
	OpenAPI              *OpenAPI          `yaml:"openapi" jsonschema_description:"The API's OpenAPI document, for request validation."`
	CORS                 *CORS             `yaml:"cors" jsonschema_description:"Cross-origin resource sharing; preflights are answered by the gateway."`
	IPFilter             *IPFilter         `yaml:"ip_filter" jsonschema_description:"Client address allow and deny lists."`
	Transforms           *Transforms       `yaml:"transforms" jsonschema_description:"Header and path changes for every operation."`
	Timeouts             *UpstreamTimeouts `yaml:"timeouts" jsonschema_description:"Deadlines of the upstream exchange (overall and per attempt)."`
	CaseInsensitivePaths bool              `yaml:"case_insensitive_paths" jsonschema_description:"Match path_prefix and operation paths ignoring ASCII case, and forward the path lower-cased. Default false: paths are case-sensitive (RFC 3986). Set it for backends that ignore case, so that /ADMIN cannot reach the backend's /admin through another API."`
}

// Operation is one method and path template of an API.
type Operation struct {
	Name    string   `yaml:"name" jsonschema_description:"Name used in logs and metrics. Default \"METHOD path\"."`
	Method  string   `yaml:"method" jsonschema_description:"HTTP method (GET, POST, ...)."`
	Methods []string `yaml:"methods" jsonschema_description:"Several methods; use instead of method."`
	Path    string   `yaml:"path" jsonschema:"required" jsonschema_description:"Path template relative to the API's path_prefix, e.g. /orders/{id}; a last segment {name...} matches the rest of the path."`
	Auth    *Auth    `yaml:"auth" jsonschema_description:"Auth requirement; replaces the API's."`
	// Sensitive marks the operation for the first-access detector.
	Sensitive *bool `yaml:"sensitive" jsonschema_description:"The operation is sensitive (true) or not (false), whatever the API says: with anomalies.enabled, a caller's first request to it is flagged (anomalies.first_access)."`

	// Traffic policies (docs/policies.md).
	RateLimits []RateLimit       `yaml:"rate_limits" jsonschema_description:"Rate limits of this operation alone, added to the API's (same name: replaces it)."`
	Quotas     []Quota           `yaml:"quotas" jsonschema_description:"Quotas of this operation alone, added to the API's (same name: replaces it)."`
	IPFilter   *IPFilter         `yaml:"ip_filter" jsonschema_description:"Address lists checked after the API's; both must pass."`
	Transforms *Transforms       `yaml:"transforms" jsonschema_description:"Header changes applied after the API's; a path change replaces the API's."`
	Mock       *Mock             `yaml:"mock" jsonschema_description:"Answer with this response; the backend is never called."`
	Timeouts   *UpstreamTimeouts `yaml:"timeouts" jsonschema_description:"Deadlines of the upstream exchange; each key set here replaces the API's."`
}

// Auth is an auth requirement. Either Anonymous is true, or Credentials lists
// at least one accepted credential type.
type Auth struct {
	Anonymous   bool     `yaml:"anonymous" jsonschema_description:"No authentication. Must be said explicitly: a route without auth is refused."`
	Credentials []string `yaml:"credentials" jsonschema:"enum=jwt,enum=api_key,enum=mtls" jsonschema_description:"Accepted credential types, tried in the order jwt, api_key, mtls."`
	Issuers     []string `yaml:"issuers" jsonschema_description:"Identity providers whose JWTs are accepted. Default: all."`
	Require     *Require `yaml:"require" jsonschema_description:"What the caller must have."`
}

// Require lists the attributes a caller must have. Every listed condition
// must hold.
type Require struct {
	Groups *Match            `yaml:"groups" jsonschema_description:"Groups the caller must be in."`
	Roles  *Match            `yaml:"roles" jsonschema_description:"Roles the caller must have."`
	Scopes *Match            `yaml:"scopes" jsonschema_description:"Scopes the caller's token must grant."`
	Claims map[string]*Match `yaml:"claims" jsonschema_description:"Claim path to accepted values; the claim may be a string, a number, a bool or an array of them; a string is one value, compared whole (\"evil acme\" is not acme), except the scope and scp claims, space-separated lists."`
}

// Match is a set condition on a list of values.
type Match struct {
	AnyOf []string `yaml:"any_of" jsonschema_description:"At least one of these."`
	AllOf []string `yaml:"all_of" jsonschema_description:"Every one of these."`
}
