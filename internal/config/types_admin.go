package config

// AdminAccess is who may use the admin API (/v1 on the admin listener)
// and how they prove it. It is embedded in Admin, so its keys sit directly
// under server.admin. With none of it written, the admin API refuses
// every request: default deny.
type AdminAccess struct {
	InsecureLocal bool       `yaml:"insecure_local" jsonschema_description:"Serve the admin API without authentication, as the admin role, to callers on loopback. Only accepted when server.admin.address is a loopback address (127.0.0.1, ::1, localhost). For development only."`
	Auth          *AdminAuth `yaml:"auth" jsonschema_description:"Credentials accepted by the admin API: bearer JWTs from identity providers, and admin API keys."`
	TLS           *AdminTLS  `yaml:"tls" jsonschema_description:"Serve the admin listener over HTTPS, optionally requiring client certificates (mTLS) for /v1."`
}

// AdminAuth lists the credentials the admin API accepts.
type AdminAuth struct {
	JWT     *AdminJWT     `yaml:"jwt" jsonschema_description:"Bearer JWTs from configured identity providers; admin roles come from their claims."`
	APIKeys []AdminAPIKey `yaml:"api_keys" jsonschema_description:"Admin API keys, presented as 'Authorization: Bearer ghk_...', each with one role."`
}

// AdminJWT maps bearer JWTs to admin roles.
type AdminJWT struct {
	Issuers   []string           `yaml:"issuers" jsonschema:"required" jsonschema_description:"Names of identity_providers whose tokens the admin API accepts."`
	Audiences []string           `yaml:"audiences" jsonschema_description:"The admin API accepts only tokens whose aud holds one of these (each must be among an accepted issuer's audiences). Default: any audience the issuer accepts, so a token minted for a public API (or passed on to a backend with pass_credential) also works here: set it whenever those issuers serve public APIs too."`
	Roles     []AdminRoleBinding `yaml:"roles" jsonschema:"required" jsonschema_description:"Role bindings: a token that satisfies a binding's 'when' gets its role. A token may collect several."`
}

// AdminRoleBinding grants an admin role to tokens whose claims satisfy When.
type AdminRoleBinding struct {
	Role     string   `yaml:"role" jsonschema:"required,enum=admin,enum=registrar,enum=viewer" jsonschema_description:"admin (everything), registrar (register, heartbeat and deregister instances of the listed services) or viewer (read-only)."`
	Services []string `yaml:"services" jsonschema_description:"For the registrar role: the services it may register into (required; '*' means every service)."`
	When     *Require `yaml:"when" jsonschema:"required" jsonschema_description:"What the token must carry (groups, roles, scopes, claims), as in an API's auth.require."`
}

// AdminAPIKey is one admin API key, kept as its hash.
type AdminAPIKey struct {
	Name     string   `yaml:"name" jsonschema:"required" jsonschema_description:"A unique name; it is the actor in the audit log."`
	SHA256   string   `yaml:"sha256" jsonschema_description:"Hex SHA-256 of the key ('gatehouse keys generate')."`
	Value    Secret   `yaml:"value" jsonschema_description:"A reference to the plain key (${env:NAME}, ${file:PATH} or ${vault:PATH#FIELD}); hashed at load."`
	Role     string   `yaml:"role" jsonschema:"required,enum=admin,enum=registrar,enum=viewer"`
	Services []string `yaml:"services" jsonschema_description:"For the registrar role: the services it may register into (required; '*' means every service)."`
}

// AdminTLS configures HTTPS on the admin listener.
type AdminTLS struct {
	CertFile     string `yaml:"cert_file" jsonschema:"required" jsonschema_description:"PEM certificate chain."`
	KeyFile      string `yaml:"key_file" jsonschema:"required" jsonschema_description:"PEM private key."`
	ClientCAFile string `yaml:"client_ca_file" jsonschema_description:"PEM CA bundle; when set, every /v1 request must present a client certificate signed by it, in addition to its credential. Probes and metrics stay open."`
}

// Admin roles.
const (
	AdminRoleAdmin     = "admin"
	AdminRoleRegistrar = "registrar"
	AdminRoleViewer    = "viewer"
)

// AdminRoles lists the admin roles.
var AdminRoles = []string{AdminRoleAdmin, AdminRoleRegistrar, AdminRoleViewer}
