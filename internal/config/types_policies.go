package config

// RateLimit is one rate limit of an API or an operation, enforced with the
// generic cell rate algorithm (GCRA): a bucket of Burst requests that
// refills at Rate requests per Period. docs/policies.md gives the exact
// semantics.
type RateLimit struct {
	Name           string   `yaml:"name" jsonschema:"required" jsonschema_description:"Unique within the API; names the limit in RateLimit headers, logs and metrics. An operation limit with the name of an API limit replaces it for that operation."`
	Rate           int      `yaml:"rate" jsonschema:"required" jsonschema_description:"Requests allowed per period, sustained."`
	Period         Duration `yaml:"period" jsonschema:"required" jsonschema_description:"The period of rate, e.g. 1s or 1m."`
	Burst          int      `yaml:"burst" jsonschema_description:"Requests that may arrive at once after an idle time. Default: rate."`
	Key            []string `yaml:"key" jsonschema_description:"What is counted together: consumer, subject, ip, api, claim:PATH, header:NAME, or a list of them (combined). Default [subject]. A part with no value in a request is replaced by the client IP."`
	MaxKeys        int      `yaml:"max_keys" jsonschema_description:"Most distinct keys kept in memory. Default 1000000. Keys beyond it share one overflow bucket per shard. Fixed when the limit is first made: a reload keeps the running limit's (rename the limit to apply a new one)."`
	OnRedisFailure string   `yaml:"on_redis_failure" jsonschema:"enum=deny,enum=local,enum=allow" jsonschema_description:"With storage.redis: what this limit does while Redis fails, instead of storage.redis.on_failure (deny, local or allow, as there). Without storage.redis limits are in memory and never fail: it has no effect (lint says so)."`
}

// Quota is a number of requests allowed per calendar period, persisted
// across restarts.
type Quota struct {
	Name     string   `yaml:"name" jsonschema:"required" jsonschema_description:"Unique within the API; an operation quota with the name of an API quota replaces it for that operation."`
	Limit    int64    `yaml:"limit" jsonschema:"required" jsonschema_description:"Requests allowed per period."`
	Period   string   `yaml:"period" jsonschema:"required,enum=hour,enum=day,enum=week,enum=month" jsonschema_description:"Calendar period: hour, day, week (starting Monday) or month."`
	TimeZone string   `yaml:"time_zone" jsonschema_description:"IANA time zone in which periods start, e.g. Europe/Paris. Default UTC."`
	Key      []string `yaml:"key" jsonschema_description:"What is counted together, as for rate limits. Default [subject]."`
	MaxKeys  int      `yaml:"max_keys" jsonschema_description:"Most distinct keys kept. Default 100000. Keys beyond it share one overflow counter."`
}

// OpenAPI attaches an OpenAPI document to an API.
type OpenAPI struct {
	Spec            string `yaml:"spec" jsonschema:"required" jsonschema_description:"Path of the OpenAPI 3.0 or 3.1 document (YAML or JSON), read when the configuration is compiled."`
	ValidateRequest bool   `yaml:"validate_request" jsonschema_description:"Validate path, query and header parameters and the JSON body of every request against the document; violations get 400 and never reach the backend."`
}

// CORS configures cross-origin resource sharing for an API.
type CORS struct {
	AllowOrigins     []string `yaml:"allow_origins" jsonschema:"required" jsonschema_description:"Allowed origins: exact (https://app.example.com), a subdomain wildcard (https://*.example.com) or * (any origin, not with allow_credentials)."`
	AllowMethods     []string `yaml:"allow_methods" jsonschema_description:"Methods allowed in preflights. Default: the methods of the API's operations."`
	AllowHeaders     []string `yaml:"allow_headers" jsonschema_description:"Request headers allowed in preflights (case-insensitive), or * for any (not with allow_credentials). Default: none beyond the CORS-safelisted ones."`
	ExposeHeaders    []string `yaml:"expose_headers" jsonschema_description:"Response headers that scripts may read."`
	AllowCredentials bool     `yaml:"allow_credentials" jsonschema_description:"Let browsers send cookies and Authorization with cross-origin requests."`
	MaxAge           Duration `yaml:"max_age" jsonschema_description:"How long browsers may cache a preflight answer. Default 5m."`
}

// IPFilter allows or denies clients by address. Deny wins over allow; when
// allow is set, an address must match it.
type IPFilter struct {
	Allow []string `yaml:"allow" jsonschema_description:"CIDRs or addresses allowed; when set, every other address is denied."`
	Deny  []string `yaml:"deny" jsonschema_description:"CIDRs or addresses denied, even if allowed."`
}

// Transforms change the request forwarded to the backend and the response
// returned to the client.
type Transforms struct {
	RequestHeaders  *HeaderOps `yaml:"request_headers" jsonschema_description:"Changes to the request headers sent to the backend (applied before the gateway sets its identity and forwarding headers)."`
	ResponseHeaders *HeaderOps `yaml:"response_headers" jsonschema_description:"Changes to the response headers sent to the client."`
	StripPrefix     string     `yaml:"strip_prefix" jsonschema_description:"Remove this path prefix (at a segment boundary) from the forwarded path."`
	Path            string     `yaml:"path" jsonschema_description:"Operations only: forward to this path template instead, e.g. /v2/orders/{id}, filled with the matched path parameters."`
}

// HeaderOps set, append and remove headers, in that order: remove, set,
// append.
type HeaderOps struct {
	Set    map[string]string `yaml:"set" jsonschema_description:"Replace the header with this value."`
	Append map[string]string `yaml:"append" jsonschema_description:"Add this value to the header."`
	Remove []string          `yaml:"remove" jsonschema_description:"Remove the header."`
}

// Mock is a fixed response for an operation; the backend is never called.
type Mock struct {
	Status   int               `yaml:"status" jsonschema_description:"Status code. Default 200."`
	Headers  map[string]string `yaml:"headers" jsonschema_description:"Response headers. Content-Type defaults to application/json when the body is JSON, else text/plain; charset=utf-8."`
	Body     string            `yaml:"body" jsonschema_description:"Response body."`
	BodyFile string            `yaml:"body_file" jsonschema_description:"File holding the response body, read when the configuration is compiled."`
}
