package config

import "time"

// Defaults of the traffic-policy keys; docs/policies.md states the same.
const (
	// DefaultRateLimitMaxKeys bounds the keys one rate limit keeps in memory.
	DefaultRateLimitMaxKeys = 1_000_000
	// DefaultQuotaMaxKeys bounds the keys one quota keeps (and persists).
	DefaultQuotaMaxKeys = 100_000
	// DefaultQuotaTimeZone is where quota periods start when none is given.
	DefaultQuotaTimeZone = "UTC"
	// DefaultCORSMaxAge is how long browsers may cache a preflight answer.
	DefaultCORSMaxAge = 5 * time.Minute
	// MaxCORSMaxAge bounds cors.max_age (browsers cap it lower anyway).
	MaxCORSMaxAge = 24 * time.Hour
	// DefaultMockStatus is the status of a mock response without one.
	DefaultMockStatus = 200
	// MaxMockBody bounds a mock response body (inline or from a file).
	MaxMockBody = 1 << 20
	// MaxRateLimitKeys bounds rate_limits[].max_keys and quotas[].max_keys.
	MaxRateLimitKeys = 100_000_000
)

// DefaultLimitKey is the key of a rate limit or quota that names none.
var DefaultLimitKey = []string{"subject"}
