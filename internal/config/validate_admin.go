package config

import (
	"errors"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// ValidName reports whether s is a valid name of a backend, consumer or
// registered service: 1-64 letters, digits, '_', '.' or '-', starting
// with a letter or digit.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// storeAdminRegistry checks storage, server.admin's access keys, the
// registry section and backends[].registry.
func (v *validator) storeAdminRegistry() {
	v.postgres()
	v.redis()
	v.adminAccess()
	v.registry()
	for i, b := range v.c.Backends {
		if b.Registry != nil && b.Registry.Service != "" && !ValidName(b.Registry.Service) {
			v.r.Errorf(Field(Index("backends", i), "registry.service"), "service name %q must be %s", b.Registry.Service, registryServiceNameHelp)
		}
	}
}

func (v *validator) adminAccess() {
	a := &v.c.Server.Admin
	if a.InsecureLocal {
		host, _, err := net.SplitHostPort(v.c.Server.AdminAddress())
		if err == nil && !IsLoopbackHost(host) {
			v.r.Errorf("server.admin.insecure_local", "insecure_local needs server.admin.address on a loopback address (127.0.0.1, ::1 or localhost), not %q: unauthenticated admin access must never be reachable from another machine", v.c.Server.AdminAddress())
		}
	}
	if a.Auth == nil {
		return
	}
	if j := a.Auth.JWT; j != nil {
		if len(j.Issuers) == 0 {
			if _, ok := v.r.doc.positions["server.admin.auth.jwt.issuers"]; ok {
				v.r.Errorf("server.admin.auth.jwt.issuers", "needs at least one identity provider")
			}
		}
		for i, name := range j.Issuers {
			if name != "" && !v.providers[name] {
				v.r.Errorf(Index("server.admin.auth.jwt.issuers", i), "unknown identity provider %q", name)
			}
		}
		for i, aud := range j.Audiences {
			p := Index("server.admin.auth.jwt.audiences", i)
			if aud == "" {
				v.r.Errorf(p, "must not be empty")
				continue
			}
			found := false
			for _, idp := range v.c.IdentityProviders {
				if slices.Contains(j.Issuers, idp.Name) && slices.Contains(idp.Audiences, aud) {
					found = true
				}
			}
			if !found {
				v.r.Errorf(p, "%q is not among the audiences of the issuers listed, so no token they accept could carry it; add it to an issuer's audiences", aud)
			}
		}
		for i, b := range j.Roles {
			p := Index("server.admin.auth.jwt.roles", i)
			v.adminRole(p, b.Role, b.Services)
			if b.When != nil && requireIsEmpty(b.When) {
				v.r.Errorf(Field(p, "when"), "needs at least one condition (groups, roles, scopes or claims); a role is never granted to every token")
			}
		}
	}
	names := map[string]bool{}
	hashes := map[string]bool{}
	for i, k := range a.Auth.APIKeys {
		p := Index("server.admin.auth.api_keys", i)
		v.name(Field(p, "name"), "admin API key", k.Name, names)
		v.adminRole(p, k.Role, k.Services)
		switch {
		case k.SHA256 != "" && !k.Value.IsZero():
			v.r.Errorf(p, "set either sha256 or value, not both")
		case k.SHA256 == "" && k.Value.IsZero():
			v.r.Errorf(p, "set sha256 (the key's hash) or value (a secret reference to the key)")
		case k.SHA256 != "":
			if !hexRE.MatchString(k.SHA256) {
				v.r.Errorf(Field(p, "sha256"), "must be 64 hexadecimal characters (the SHA-256 of the key)")
			} else if h := strings.ToLower(k.SHA256); hashes[h] {
				v.r.Errorf(Field(p, "sha256"), "the same key hash is used by another admin API key")
			} else {
				hashes[h] = true
			}
		}
	}
}

func requireIsEmpty(r *Require) bool {
	empty := func(m *Match) bool { return m == nil || len(m.AnyOf) == 0 && len(m.AllOf) == 0 }
	if !empty(r.Groups) || !empty(r.Roles) || !empty(r.Scopes) {
		return false
	}
	for _, m := range r.Claims {
		if !empty(m) {
			return false
		}
	}
	return true
}

func (v *validator) adminRole(p, role string, services []string) {
	switch role {
	case "":
		return // reported as missing
	case AdminRoleAdmin, AdminRoleViewer:
		if len(services) > 0 {
			v.r.Errorf(Field(p, "services"), "services only apply to the registrar role")
		}
	case AdminRoleRegistrar:
		if len(services) == 0 {
			v.r.Errorf(Field(p, "role"), "the registrar role needs services: the services it may register into ('*' for every service)")
		}
		for j, s := range services {
			if s != "*" && !ValidName(s) {
				v.r.Errorf(Index(Field(p, "services"), j), "service name %q must be %s, or '*'", s, registryServiceNameHelp)
			}
		}
	default:
		v.r.Errorf(Field(p, "role"), "unknown role %q (known: %s)", role, strings.Join(AdminRoles, ", "))
	}
}

func (v *validator) registry() {
	r := &v.c.Registry
	for i, c := range r.AllowedCIDRs {
		if _, err := ParsePrefix(c); err != nil {
			v.r.Errorf(Index("registry.allowed_cidrs", i), "%v", err)
		}
	}
	if r.DefaultTTL.Set && r.DefaultTTL.Duration < MinRegistryTTL {
		v.r.Errorf("registry.default_ttl", "must be at least %s", MinRegistryTTL)
	}
	if r.MaxTTL.Set && r.MaxTTL.Duration < MinRegistryTTL {
		v.r.Errorf("registry.max_ttl", "must be at least %s", MinRegistryTTL)
	}
	if r.DefaultTTL.Or(DefaultRegistryTTL) > r.MaxTTL.Or(DefaultRegistryMaxTTL) {
		v.r.Errorf("registry.default_ttl", "must not be longer than registry.max_ttl (%s)", r.MaxTTL.Or(DefaultRegistryMaxTTL))
	}
	if r.MaxInstances < 0 {
		v.r.Errorf("registry.max_instances_per_service", "must not be negative")
	}
	if r.MaxServices < 0 {
		v.r.Errorf("registry.max_services", "must not be negative")
	}
}

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// postgres checks storage.postgres. No message repeats the URL: a
// password written into it must not reach a log.
func (v *validator) postgres() {
	p := v.c.Storage.Postgres
	if p == nil {
		return
	}
	const path = "storage.postgres"
	if p.URL == "" {
		v.r.Errorf(Field(path, "url"), "is required: postgres://user@host:5432/database")
	} else if u, err := url.Parse(p.URL); err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL
		}
		v.r.Errorf(Field(path, "url"), "is not a URL: %v", err)
	} else if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		v.r.Errorf(Field(path, "url"), "must be a postgres:// URL, not %q", u.Scheme+":")
	} else if _, has := u.User.Password(); has || u.Query().Has("password") || u.Query().Has("sslpassword") {
		v.r.Errorf(Field(path, "url"), "must not hold a password or sslpassword (it would be in the configuration and its history); give the password in storage.postgres.password as ${env:NAME} or ${file:/path}, or by PGPASSWORD or ~/.pgpass")
	}
	if p.Schema != "" && !schemaRE.MatchString(p.Schema) {
		v.r.Errorf(Field(path, "schema"), "%q must be 1-63 lower-case letters, digits or '_', not starting with a digit", p.Schema)
	}
	if !p.Password.IsZero() && p.Password.Provider != "env" && p.Password.Provider != "file" {
		v.r.Errorf(Field(path, "password"), "%s cannot be used here: the store is opened before secret stores are; use ${env:NAME} or ${file:/path}", p.Password)
	}
	v.durationRange(Field(path, "sync_interval"), p.SyncInterval, MinPostgresSyncInterval, MaxPostgresSyncInterval)
}

// redis checks storage.redis, without repeating the URL.
func (v *validator) redis() {
	r := v.c.Storage.Redis
	if r == nil {
		return
	}
	const path = "storage.redis"
	if r.URL == "" {
		v.r.Errorf(Field(path, "url"), "is required: redis://host:6379/0")
	} else if u, err := url.Parse(r.URL); err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL
		}
		v.r.Errorf(Field(path, "url"), "is not a URL: %v", err)
	} else if u.Scheme != "redis" && u.Scheme != "rediss" {
		v.r.Errorf(Field(path, "url"), "must be a redis:// or rediss:// URL, not %q", u.Scheme+":")
	} else if _, has := u.User.Password(); has || u.Query().Has("password") {
		v.r.Errorf(Field(path, "url"), "must not hold a password (it would be in the configuration and its history); give it in storage.redis.password as ${env:NAME} or ${file:/path}")
	} else if u.Query().Has("skip_verify") {
		v.r.Errorf(Field(path, "url"), "skip_verify is not allowed: the server's certificate is always verified; give its CA in storage.redis.tls.ca_file")
	} else if db := strings.Trim(u.Path, "/"); r.Cluster && db != "" && db != "0" {
		v.r.Errorf(Field(path, "url"), "a Redis Cluster has only database 0, not %q", db)
	} else if !r.Cluster && r.SentinelMaster == "" && u.Query().Has("addr") {
		v.r.Errorf(Field(path, "url"), "addr= names more nodes of a Redis Cluster or more Sentinels: set storage.redis.cluster: true or storage.redis.sentinel_master")
	}
	if r.SentinelMaster != "" {
		if u, err := url.Parse(r.URL); err == nil && u.User != nil {
			v.r.Errorf(Field(path, "url"), "with sentinel_master a user in the URL would be the Sentinels' only, not the primary's: not supported")
		}
		if r.Cluster {
			v.r.Errorf(Field(path, "sentinel_master"), "is for a primary watched by Sentinels; a Redis Cluster (cluster: true) finds its nodes itself")
		}
		if !nameRE.MatchString(r.SentinelMaster) {
			v.r.Errorf(Field(path, "sentinel_master"), "%q must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit", r.SentinelMaster)
		}
	} else if !r.SentinelPassword.IsZero() {
		v.r.Errorf(Field(path, "sentinel_password"), "is for Sentinels: set sentinel_master too")
	}
	if !r.SentinelPassword.IsZero() && r.SentinelPassword.Provider != "env" && r.SentinelPassword.Provider != "file" {
		v.r.Errorf(Field(path, "sentinel_password"), "%s cannot be used here: the store is opened before secret stores are; use ${env:NAME} or ${file:/path}", r.SentinelPassword)
	}
	if t := r.TLS; t != nil {
		if u, err := url.Parse(r.URL); err == nil && u.Scheme == "redis" {
			v.r.Errorf(Field(path, "tls"), "needs a rediss:// URL: with redis:// the connection is not encrypted")
		}
		if (t.ClientCertFile == "") != (t.ClientKeyFile == "") {
			v.r.Errorf(Field(Field(path, "tls"), "client_cert_file"), "client_cert_file and client_key_file go together")
		}
	}
	if !r.Password.IsZero() && r.Password.Provider != "env" && r.Password.Provider != "file" {
		v.r.Errorf(Field(path, "password"), "%s cannot be used here: the store is opened before secret stores are; use ${env:NAME} or ${file:/path}", r.Password)
	}
	v.durationRange(Field(path, "timeout"), r.Timeout, MinRedisTimeout, MaxRedisTimeout)
	switch r.OnFailure {
	case "", RedisOnFailureDeny, RedisOnFailureLocal, RedisOnFailureAllow:
	default:
		v.r.Errorf(Field(path, "on_failure"), "must be deny, local or allow, not %q", r.OnFailure)
	}
}
