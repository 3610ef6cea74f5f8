package config

import (
	"fmt"
	"time"
)

// Defaults of keys that are not written. docs/configuration.md states the
// same values; a test keeps them in step.
const (
	DefaultListenAddress      = ":8080"
	DefaultAdminAddress       = "127.0.0.1:9901"
	DefaultReadHeaderTimeout  = 10 * time.Second
	DefaultReadTimeout        = 60 * time.Second
	DefaultWriteTimeout       = 60 * time.Second
	DefaultIdleTimeout        = 120 * time.Second
	DefaultShutdownTimeout    = 30 * time.Second
	DefaultMaxHeaderBytes     = 64 << 10
	DefaultMaxBody            = 10 << 20
	DefaultMaxURI             = 8 << 10
	DefaultRequestIDHeader    = "X-Request-ID"
	DefaultIdentityPrefix     = "X-Gatehouse-"
	DefaultAPIKeyHeader       = "X-API-Key"
	DefaultClockSkew          = 30 * time.Second
	DefaultMaxTokenSize       = 8 << 10
	DefaultJWKSRefresh        = time.Hour
	DefaultJWKSCooldown       = 30 * time.Second
	DefaultJWKSTimeout        = 5 * time.Second
	DefaultDialTimeout        = 5 * time.Second
	DefaultResponseHeaderTime = 30 * time.Second
	DefaultResponseIdle       = 60 * time.Second
	DefaultTunnelIdle         = time.Hour
	DefaultMaxIdlePerInstance = 256
	DefaultDataDir            = "gatehouse-data"
)

// DefaultAlgorithms are accepted when an identity provider lists none.
var DefaultAlgorithms = []string{"RS256"}

// EffectiveListeners returns the listeners, each with its name set (the
// configured one, or "public", "public-1", ...), or the default listener.
func (s *Server) EffectiveListeners() []Listener {
	if len(s.Listeners) == 0 {
		return []Listener{{Name: "public", Address: DefaultListenAddress}}
	}
	out := make([]Listener, len(s.Listeners))
	for i, l := range s.Listeners {
		if l.Name == "" {
			l.Name = "public"
			if i > 0 {
				l.Name = fmt.Sprintf("public-%d", i)
			}
		}
		out[i] = l
	}
	return out
}

// AdminAddress returns the admin listener address.
func (s *Server) AdminAddress() string {
	if s.Admin.Address == "" {
		return DefaultAdminAddress
	}
	return s.Admin.Address
}
