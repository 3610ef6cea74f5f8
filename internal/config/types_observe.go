package config

import "time"

// Observability configures traces and the dashboard.
type Observability struct {
	Tracing   Tracing   `yaml:"tracing" jsonschema_description:"OpenTelemetry traces sent over OTLP/HTTP. Off by default."`
	Dashboard Dashboard `yaml:"dashboard" jsonschema_description:"The web dashboard at /ui on the admin listener. Off unless oidc or insecure_local is set. A reload that changes it rebuilds the dashboard, ending its sessions."`
}

// Tracing configures OpenTelemetry traces.
type Tracing struct {
	Enabled     bool              `yaml:"enabled" jsonschema_description:"Record spans and export them. Default false: no tracing work is done on the request path."`
	Endpoint    string            `yaml:"endpoint" jsonschema_description:"OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces (https required off loopback). Required when enabled."`
	Headers     map[string]Secret `yaml:"headers" jsonschema_description:"Headers sent with every export (e.g. an API key of the collector), each a secret reference."`
	SampleRatio *float64          `yaml:"sample_ratio" jsonschema_description:"Fraction of new traces recorded, 0 to 1; a caller's sampled flag is followed (parent-based). Default 1."`
	ServiceName string            `yaml:"service_name" jsonschema_description:"service.name of the spans. Default gatehouse."`
	Timeout     Duration          `yaml:"timeout" jsonschema_description:"Timeout of one export. Default 10s."`
	CAFile      string            `yaml:"ca_file" jsonschema_description:"PEM CA bundle for the collector's TLS (an https endpoint); default the system roots. Read at every reload: a changed bundle starts a new exporter."`
}

// Dashboard configures the web dashboard and how people sign in to it.
type Dashboard struct {
	InsecureLocal bool           `yaml:"insecure_local" jsonschema_description:"No sign-in: anyone who reaches the admin listener is an admin of the dashboard. Accepted only when the admin listener is on a loopback address. For local development."`
	OIDC          *DashboardOIDC `yaml:"oidc" jsonschema_description:"Sign in with an OpenID Connect provider (authorization code flow with PKCE)."`
	Session       Session        `yaml:"session" jsonschema_description:"Sign-in sessions."`
}

// DashboardOIDC is the OpenID Connect client of the dashboard.
type DashboardOIDC struct {
	Issuer       string    `yaml:"issuer" jsonschema:"required" jsonschema_description:"The provider's issuer URL; its discovery document is read from issuer + /.well-known/openid-configuration."`
	ClientID     string    `yaml:"client_id" jsonschema:"required" jsonschema_description:"The dashboard's client ID at the provider."`
	ClientSecret Secret    `yaml:"client_secret" jsonschema_description:"The client secret, as a secret reference; leave out for a public client (PKCE only). A new value (a reload, a changed file) is used from the next sign-in."`
	RedirectURL  string    `yaml:"redirect_url" jsonschema:"required" jsonschema_description:"The URL the provider sends people back to: the admin listener's external URL + /ui/callback. https, or http on a loopback host."`
	Scopes       []string  `yaml:"scopes" jsonschema_description:"Scopes requested. Default [openid, profile, email]."`
	CAFile       string    `yaml:"ca_file" jsonschema_description:"PEM CA bundle for the provider's TLS; default the system roots. Read at every reload."`
	Roles        RoleClaim `yaml:"roles" jsonschema:"required" jsonschema_description:"Which claim values make a person an admin or a viewer of the dashboard."`
}

// RoleClaim maps claim values to dashboard roles.
type RoleClaim struct {
	Claim  string   `yaml:"claim" jsonschema_description:"Claim path holding the values (a list, or one string: a string is one value, never split). Default groups."`
	Admin  []string `yaml:"admin" jsonschema_description:"Values that make an admin: sees everything and may create, rotate and revoke keys."`
	Viewer []string `yaml:"viewer" jsonschema_description:"Values that make a viewer: sees everything, changes nothing."`
}

// Session configures dashboard sessions.
type Session struct {
	IdleTimeout     Duration `yaml:"idle_timeout" jsonschema_description:"A session unused this long ends (the Overview's automatic refresh of its figures is not use). Default 30m."`
	AbsoluteTimeout Duration `yaml:"absolute_timeout" jsonschema_description:"A session ends this long after sign-in, used or not. Default 12h."`
}

// Defaults of the observability keys.
const (
	DefaultTraceSampleRatio   = 1.0
	DefaultTraceServiceName   = "gatehouse"
	DefaultTraceExportTimeout = 10 * time.Second
	DefaultRoleClaim          = "groups"
	DefaultSessionIdle        = 30 * time.Minute
	DefaultSessionAbsolute    = 12 * time.Hour
)

// DefaultDashboardScopes are requested when oidc.scopes is empty.
var DefaultDashboardScopes = []string{"openid", "profile", "email"}

// DashboardEnabled reports whether the dashboard is served.
func (d *Dashboard) DashboardEnabled() bool { return d.InsecureLocal || d.OIDC != nil }
