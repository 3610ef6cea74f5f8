package config

import "time"

// BackendIdentity configures how the gateway proves itself to backends with
// tokens it signs: its issuer name, where its signing keys live and how
// they rotate. It is needed as soon as one backend sets identity.jwt.
type BackendIdentity struct {
	Issuer    string             `yaml:"issuer" jsonschema_description:"The iss of every token the gateway mints: an https URL naming this gateway (http only for loopback). Required when a backend sets identity.jwt."`
	JWKSURI   string             `yaml:"jwks_uri" jsonschema_description:"The jwks_uri advertised in /.well-known/openid-configuration. Default: the issuer's scheme and host + /.well-known/jwks.json."`
	Discovery *bool              `yaml:"discovery" jsonschema_description:"Serve minimal OpenID discovery metadata (issuer, jwks_uri) at the issuer's path + /.well-known/openid-configuration. Default true."`
	ClockSkew Duration           `yaml:"clock_skew" jsonschema_description:"Clock difference allowed between the gateway and its backends; a retired key stays published this long after its last token expired. Default 30s; at most 5m."`
	KeyDir    string             `yaml:"key_dir" jsonschema_description:"Directory of the signing keys (created 0700, key files 0600). Default <storage.data_dir>/backend-identity."`
	Rotation  BackendKeyRotation `yaml:"rotation"`
	CacheSize int                `yaml:"cache_size" jsonschema_description:"Minted tokens kept per backend for reuse until shortly before they expire. Default 10000."`
}

// BackendKeyRotation says how often the gateway's signing key changes and
// how long a new key is published before it signs.
type BackendKeyRotation struct {
	Interval   Duration `yaml:"interval" jsonschema_description:"How long one key signs before the next takes over. Default 24h; between 1h and 90d."`
	Prepublish Duration `yaml:"prepublish" jsonschema_description:"How long a new key is published in the JWKS before it signs, so that backends caching the JWKS know it in time. Default 1h; at least 1m and less than interval."`
}

// BackendIdentityConfig is the per-backend choice of credentials the
// gateway presents.
type BackendIdentityConfig struct {
	JWT *BackendJWT `yaml:"jwt" jsonschema_description:"Send a short-lived JWT, signed by the gateway, with every request to this backend."`
}

// BackendJWT configures the token minted for one backend.
type BackendJWT struct {
	Audience         string   `yaml:"audience" jsonschema:"required" jsonschema_description:"The aud of the token: the name under which the backend knows itself, e.g. https://orders.internal."`
	Algorithm        string   `yaml:"algorithm" jsonschema:"enum=ES256,enum=EdDSA" jsonschema_description:"Signing algorithm. Default ES256."`
	TTL              Duration `yaml:"ttl" jsonschema_description:"Lifetime of a token. Default 60s; between 10s and 1h."`
	Claims           []string `yaml:"claims" jsonschema:"enum=groups,enum=roles,enum=scope,enum=consumer,enum=idp,enum=credential" jsonschema_description:"Caller attributes the token carries besides sub and client_id. Default [groups, roles, scope, consumer]."`
	Header           string   `yaml:"header" jsonschema_description:"Request header carrying the token. Default Authorization (as 'Bearer <token>'); any other header carries the bare token. The gateway owns it: a caller's value never reaches the backend."`
	AnonymousSubject string   `yaml:"anonymous_subject" jsonschema_description:"For requests on anonymous routes: when set, a token with this sub (and no caller claims) is sent; when empty (the default) no token is sent."`
}

// Defaults of backend identity.
const (
	DefaultBackendTokenAlgorithm = "ES256"
	DefaultBackendTokenTTL       = 60 * time.Second
	MinBackendTokenTTL           = 10 * time.Second
	MaxBackendTokenTTL           = time.Hour
	DefaultBackendTokenHeader    = "Authorization"
	DefaultKeyRotationInterval   = 24 * time.Hour
	MinKeyRotationInterval       = time.Hour
	MaxKeyRotationInterval       = 90 * 24 * time.Hour
	DefaultKeyPrepublish         = time.Hour
	MinKeyPrepublish             = time.Minute
	DefaultBackendTokenCacheSize = 10000
	DefaultBackendKeyDirName     = "backend-identity"
)

// BackendTokenAlgorithms are the algorithms a backend token may be signed
// with: asymmetric only, so that backends hold no secret.
var BackendTokenAlgorithms = []string{"ES256", "EdDSA"}

// BackendTokenClaims are the caller attributes a backend token may carry.
var BackendTokenClaims = []string{"groups", "roles", "scope", "consumer", "idp", "credential"}

// DefaultBackendTokenClaims are carried when a backend lists none.
var DefaultBackendTokenClaims = []string{"groups", "roles", "scope", "consumer"}
