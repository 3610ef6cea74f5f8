package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
)

// secretState is what a snapshot knows about the secrets it was compiled
// with: the files to watch, and how often Vault secrets are read again.
type secretState struct {
	files        []string
	vaultRefresh time.Duration
	// dashboard is the dashboard's OIDC client secret (zero: none).
	dashboard secret.Value
	// stamps are the files' size and modification time when they were
	// read, to notice a change that happened before they were watched.
	stamps map[string]fileStamp
}

type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(path string) (fileStamp, bool) {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, false
	}
	return fileStamp{size: st.Size(), mod: st.ModTime()}, true
}

// SecretFilesChanged reports whether a ${file:...} secret changed (or
// vanished) since the snapshot read it. A watcher calls it once its
// watches are in place, so that a change made in between is not missed.
func (s *Snapshot) SecretFilesChanged() bool {
	for _, f := range s.secrets.files {
		now, ok := stampOf(f)
		if then, had := s.secrets.stamps[f]; !ok || !had || now != then {
			return true
		}
	}
	return false
}

// SecretFiles returns the absolute paths of the ${file:...} secrets the
// snapshot was compiled with: a change to one of them calls for a reload.
func (s *Snapshot) SecretFiles() []string { return s.secrets.files }

// VaultRefresh returns how often the configuration should be compiled
// again to read Vault secrets afresh (secrets.vault.refresh_interval), or
// zero when it uses no Vault secret or no refresh is configured.
func (s *Snapshot) VaultRefresh() time.Duration { return s.secrets.vaultRefresh }

// DashboardClientSecret returns the dashboard's OIDC client secret as this
// snapshot resolved it (observability.dashboard.oidc.client_secret; zero
// when none is set).
func (s *Snapshot) DashboardClientSecret() secret.Value { return s.secrets.dashboard }

// compileSecrets resolves the secrets of one compile: ${env:...} and
// ${file:...} through Runtime.Secrets (the files read are recorded, to be
// watched), ${vault:...} from the store that secrets.vault or the VAULT_*
// environment variables name. Offline (validate), Vault is not contacted.
type compileSecrets struct {
	c       *compiler
	base    secret.Resolver
	offline bool

	vault    *secret.Vault
	vaultErr error
	read     map[string]map[string]json.RawMessage // Vault path → fields, for this compile
}

// newSecrets returns the resolver every compile step uses for secrets.
func (c *compiler) newSecrets() *compileSecrets {
	return &compileSecrets{c: c, base: c.rt.Secrets, offline: c.rt.KeySets == nil, read: map[string]map[string]json.RawMessage{}}
}

// Resolve implements secret.Resolver.
func (cs *compileSecrets) Resolve(ctx context.Context, ref config.Secret) (secret.Value, error) {
	switch ref.Provider {
	case "file":
		abs, err := filepath.Abs(ref.Ref)
		if err == nil && !slices.Contains(cs.c.snap.secrets.files, abs) {
			cs.c.snap.secrets.files = append(cs.c.snap.secrets.files, abs)
			// Stamp before reading: a write after this shows as a change.
			if st, ok := stampOf(abs); ok {
				if cs.c.snap.secrets.stamps == nil {
					cs.c.snap.secrets.stamps = map[string]fileStamp{}
				}
				cs.c.snap.secrets.stamps[abs] = st
			}
		}
		return cs.base.Resolve(ctx, ref)
	case "vault":
		path, field, err := config.ParseVaultRef(ref.Ref)
		if err != nil {
			return secret.Value{}, err
		}
		if vc := cs.c.cfg.Secrets.Vault; vc != nil && vc.RefreshInterval.Duration > 0 {
			cs.c.snap.secrets.vaultRefresh = vc.RefreshInterval.Duration
		}
		if cs.offline {
			return secret.NewValue("offline placeholder for " + ref.String()), nil
		}
		data, ok := cs.read[path]
		if !ok {
			v, err := cs.client(ctx)
			if err != nil {
				return secret.Value{}, fmt.Errorf("%s: %w", ref, err)
			}
			if data, err = v.ReadAll(ctx, path); err != nil {
				return secret.Value{}, err
			}
			cs.read[path] = data
		}
		raw, ok := data[field]
		if !ok {
			return secret.Value{}, fmt.Errorf("vault secret %s has no field %q: %w", path, field, secret.ErrNotFound)
		}
		return secret.FieldValue(path, field, raw)
	default:
		return cs.base.Resolve(ctx, ref)
	}
}

// env reads an environment variable through the base resolver (so tests
// can inject the environment); unset or empty is "".
func (cs *compileSecrets) env(ctx context.Context, name string) string {
	v, err := cs.base.Resolve(ctx, config.Secret{Provider: "env", Ref: name})
	if err != nil {
		return ""
	}
	return v.Reveal()
}

// client builds the Vault client of this compile from secrets.vault and
// the VAULT_* environment variables.
func (cs *compileSecrets) client(ctx context.Context) (*secret.Vault, error) {
	if cs.vault != nil || cs.vaultErr != nil {
		return cs.vault, cs.vaultErr
	}
	var vc config.Vault
	if cs.c.cfg.Secrets.Vault != nil {
		vc = *cs.c.cfg.Secrets.Vault
	}
	v := &secret.Vault{
		Address:   vc.Address,
		Namespace: vc.Namespace,
		Timeout:   vc.Timeout.Or(config.DefaultVaultTimeout),
	}
	if v.Address == "" {
		v.Address = cs.env(ctx, config.DefaultVaultAddrEnv)
	}
	if v.Namespace == "" {
		v.Namespace = cs.env(ctx, config.DefaultVaultNSEnv)
	}
	caFile := vc.CAFile
	if caFile == "" {
		caFile = cs.env(ctx, config.DefaultVaultCACertEnv)
	}
	var roots *x509.CertPool
	if caFile != "" {
		pool, _, err := loadCAFile(caFile)
		if err != nil {
			cs.vaultErr = fmt.Errorf("Vault CA: %v", err)
			return nil, cs.vaultErr
		}
		roots = pool
	}
	tokenRef := config.Secret{Provider: "env", Ref: config.DefaultVaultTokenEnv}
	if vc.TokenFile != "" {
		tokenRef = config.Secret{Provider: "file", Ref: vc.TokenFile}
	}
	v.Token = func(ctx context.Context) (secret.Value, error) { return cs.base.Resolve(ctx, tokenRef) }
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyFromEnvironment
	if roots != nil {
		if tr.TLSClientConfig == nil { // Clone leaves it nil with HTTP/2 turned off (GODEBUG=http2client=0)
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr.TLSClientConfig.RootCAs = roots
	}
	v.Client = &http.Client{Transport: tr, Timeout: v.Timeout}
	cs.vault = v
	return v, nil
}
