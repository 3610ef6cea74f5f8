package config

import "time"

// Registry configures service registration through the admin API.
type Registry struct {
	AllowedCIDRs  []string `yaml:"allowed_cidrs" jsonschema_description:"Networks registered instances may be in. Default: the private ranges 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 and fc00::/7; narrow it to your task subnets. Link-local and cloud metadata addresses are refused whatever is listed."`
	AllowLoopback bool     `yaml:"allow_loopback" jsonschema_description:"Accept loopback addresses (127.0.0.0/8, ::1). Default false; for development only."`
	DefaultTTL    Duration `yaml:"default_ttl" jsonschema_description:"TTL of a registration that gives none. Default 30s."`
	MaxTTL        Duration `yaml:"max_ttl" jsonschema_description:"Longest TTL a registration may ask for. Default 10m."`
	MaxInstances  int      `yaml:"max_instances_per_service" jsonschema_description:"Most registered instances one service may have. Default 1000."`
	MaxServices   int      `yaml:"max_services" jsonschema_description:"Most services with registered instances at once (a registrar allowed every service, services: ['*'], could otherwise create any number). Default 1000."`
}

// BackendRegistry makes a backend take instances from the registry.
type BackendRegistry struct {
	Service string `yaml:"service" jsonschema:"required" jsonschema_description:"Name of the registered service whose instances join the backend's pool."`
}

// Defaults of the storage and registry keys.
const (
	DefaultRegistryTTL      = 30 * time.Second
	DefaultRegistryMaxTTL   = 10 * time.Minute
	MinRegistryTTL          = time.Second
	DefaultMaxInstances     = 1000
	DefaultMaxServices      = 1000
	DefaultRegistryAllowed  = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7"
	registryServiceNameHelp = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"

	DefaultPostgresSchema       = "gatehouse"
	DefaultPostgresSyncInterval = 2 * time.Second
	MinPostgresSyncInterval     = 100 * time.Millisecond
	MaxPostgresSyncInterval     = time.Minute
	DefaultRedisTimeout         = 100 * time.Millisecond
	MinRedisTimeout             = time.Millisecond
	MaxRedisTimeout             = 10 * time.Second
)

// The values of storage.redis.on_failure.
const (
	RedisOnFailureDeny  = "deny"
	RedisOnFailureLocal = "local"
	RedisOnFailureAllow = "allow"
)

// SyncInterval returns how often gateways sharing a store catch up with
// each other: storage.postgres.sync_interval, or its default (also when
// there is no shared store).
func (s Storage) SyncInterval() time.Duration {
	if s.Postgres == nil {
		return DefaultPostgresSyncInterval
	}
	return s.Postgres.SyncInterval.Or(DefaultPostgresSyncInterval)
}

// EffectiveSchema returns the schema of the PostgreSQL store.
func (p *PostgresStorage) EffectiveSchema() string {
	if p.Schema == "" {
		return DefaultPostgresSchema
	}
	return p.Schema
}

// EffectiveDataDir returns the data directory of the embedded store.
func (s Storage) EffectiveDataDir() string {
	if s.DataDir == "" {
		return DefaultDataDir
	}
	return s.DataDir
}
