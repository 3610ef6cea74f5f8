package config

import "time"

// Secrets configures the secret stores that ${...} references read.
// ${env:...} and ${file:...} need nothing here.
type Secrets struct {
	Vault *Vault `yaml:"vault" jsonschema_description:"A Vault-compatible KV v2 store for ${vault:mount/data/path#field} references."`
}

// Vault configures the KV v2 store. The token is never written in the
// configuration: it comes from token_file or the VAULT_TOKEN environment
// variable.
type Vault struct {
	Address         string   `yaml:"address" jsonschema_description:"Base URL of the Vault server, e.g. https://vault.internal:8200. Default $VAULT_ADDR. Plain http only for loopback."`
	TokenFile       string   `yaml:"token_file" jsonschema_description:"File holding the Vault token (e.g. a Vault Agent sink), read at every resolution. Default: the VAULT_TOKEN environment variable."`
	Namespace       string   `yaml:"namespace" jsonschema_description:"Vault Enterprise namespace (X-Vault-Namespace). Default $VAULT_NAMESPACE."`
	CAFile          string   `yaml:"ca_file" jsonschema_description:"PEM CA bundle for the Vault server's TLS. Default $VAULT_CACERT, else the system roots."`
	Timeout         Duration `yaml:"timeout" jsonschema_description:"Timeout of one read. Default 5s; at most 1m."`
	RefreshInterval Duration `yaml:"refresh_interval" jsonschema_description:"Reload the configuration this often so that changed Vault secrets take effect. Default 0: only on reload (SIGHUP, file change). At least 1m."`
}

// Vault defaults.
const (
	DefaultVaultTimeout   = 5 * time.Second
	MaxVaultTimeout       = time.Minute
	MinVaultRefresh       = time.Minute
	DefaultVaultTokenEnv  = "VAULT_TOKEN"
	DefaultVaultAddrEnv   = "VAULT_ADDR"
	DefaultVaultNSEnv     = "VAULT_NAMESPACE"
	DefaultVaultCACertEnv = "VAULT_CACERT"
)
