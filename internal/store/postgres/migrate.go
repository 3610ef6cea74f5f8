package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migrations are applied in order, each once; a migration is never edited
// once released: add a new one. The tables mirror the embedded store's
// (times as nanoseconds, string lists as JSON), except that a quota
// counter's key is bytes: it may hold a NUL byte.
var migrations = []string{
	1: `
CREATE TABLE instances (
	service       TEXT NOT NULL,
	id            TEXT NOT NULL,
	scheme        TEXT NOT NULL,
	address       TEXT NOT NULL,
	port          INTEGER NOT NULL,
	weight        INTEGER NOT NULL,
	zone          TEXT NOT NULL,
	metadata      TEXT NOT NULL,
	ttl_ns        BIGINT NOT NULL,
	registered_ns BIGINT NOT NULL,
	heartbeat_ns  BIGINT NOT NULL,
	expires_ns    BIGINT NOT NULL,
	actor         TEXT NOT NULL,
	PRIMARY KEY (service, id)
);
CREATE TABLE consumers (
	name       TEXT PRIMARY KEY,
	groups_    TEXT NOT NULL,
	roles      TEXT NOT NULL,
	scopes     TEXT NOT NULL,
	created_ns BIGINT NOT NULL,
	updated_ns BIGINT NOT NULL
);
CREATE TABLE consumer_keys (
	consumer   TEXT NOT NULL REFERENCES consumers(name) ON DELETE CASCADE,
	slot       TEXT NOT NULL,
	hash       BYTEA NOT NULL UNIQUE,
	created_ns BIGINT NOT NULL,
	PRIMARY KEY (consumer, slot)
);
CREATE TABLE meta (
	name  TEXT PRIMARY KEY,
	value BIGINT NOT NULL
);
INSERT INTO meta (name, value) VALUES ('keys_revision', 0);
CREATE TABLE config_revisions (
	seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	version TEXT NOT NULL,
	time_ns BIGINT NOT NULL,
	source  TEXT NOT NULL,
	actor   TEXT NOT NULL,
	text    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX config_revisions_version ON config_revisions (version, seq);
CREATE TABLE counters (
	key        TEXT PRIMARY KEY,
	value      BIGINT NOT NULL,
	expires_ns BIGINT NOT NULL
);
CREATE INDEX counters_expiry ON counters (expires_ns);
CREATE TABLE audit_log (
	seq       BIGINT PRIMARY KEY,
	time_ns   BIGINT NOT NULL,
	actor     TEXT NOT NULL,
	action    TEXT NOT NULL,
	target    TEXT NOT NULL,
	outcome   TEXT NOT NULL,
	detail    TEXT NOT NULL,
	before    TEXT NOT NULL,
	after     TEXT NOT NULL,
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the audit log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
CREATE TABLE quota_counters (
	api       TEXT NOT NULL,
	operation TEXT NOT NULL,
	name      TEXT NOT NULL,
	key_spec  TEXT NOT NULL,
	key       BYTEA NOT NULL,
	start_s   BIGINT NOT NULL,
	count     BIGINT NOT NULL,
	PRIMARY KEY (api, operation, name, key_spec, key)
);
CREATE INDEX quota_counters_start ON quota_counters (start_s);
`,
	// the public signing keys the gateways publish to each other, and the
	// dashboard's sessions and sign-ins in progress
	2: `
CREATE TABLE published_keys (
	kid          TEXT PRIMARY KEY,
	alg          TEXT NOT NULL,
	jwk          TEXT NOT NULL,
	activates_ns BIGINT NOT NULL,
	expires_ns   BIGINT NOT NULL
);
CREATE INDEX published_keys_expiry ON published_keys (expires_ns);
CREATE TABLE dashboard_sessions (
	key          TEXT PRIMARY KEY,
	scope        TEXT NOT NULL,
	user_        TEXT NOT NULL,
	name         TEXT NOT NULL,
	role         INTEGER NOT NULL,
	csrf         TEXT NOT NULL,
	created_ns   BIGINT NOT NULL,
	last_seen_ns BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_seen ON dashboard_sessions (last_seen_ns);
CREATE TABLE dashboard_logins (
	key        TEXT PRIMARY KEY,
	verifier   TEXT NOT NULL,
	nonce      TEXT NOT NULL,
	return_to  TEXT NOT NULL,
	peer       TEXT NOT NULL,
	created_ns BIGINT NOT NULL
);
CREATE INDEX dashboard_logins_created ON dashboard_logins (created_ns);
`,
	// each gateway process's hours of upstream statistics, for the
	// suggested timeouts and limits
	3: `
CREATE TABLE upstream_hours (
	process    TEXT NOT NULL,
	api        TEXT NOT NULL,
	operation  TEXT NOT NULL,
	hour       BIGINT NOT NULL,
	data       BYTEA NOT NULL,
	updated_ns BIGINT NOT NULL,
	PRIMARY KEY (process, api, operation, hour)
);
CREATE INDEX upstream_hours_hour ON upstream_hours (hour);
`,
}

// SchemaVersion is the schema version this build writes.
var SchemaVersion = len(migrations) - 1

// migrate creates the schema if needed and applies the migrations it
// lacks, in one transaction under an advisory lock of the schema's name:
// gateways that start together against an empty database wait for the
// first, then find the schema current.
// checkVersion checks, without changing anything, that the schema holds a
// store at this build's version.
func (s *Store) checkVersion(ctx context.Context) error {
	var have int
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+pgx.Identifier{s.schema, "schema_migrations"}.Sanitize()).Scan(&have)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000"): // undefined_table, invalid_schema_name
		return errors.New("no Gatehouse store here (no gateway has opened it with this schema); check storage.postgres.schema")
	case err != nil:
		return fmt.Errorf("reading the schema version: %w", err)
	case have > SchemaVersion:
		return fmt.Errorf("the store has schema version %d, newer than this gatehouse knows (%d); run a newer gatehouse", have, SchemaVersion)
	case have < SchemaVersion:
		return fmt.Errorf("the store has schema version %d, older than this gatehouse's (%d); start a gateway of this version first (it brings the schema up to date), or use the gatehouse of the running gateways", have, SchemaVersion)
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	schema := pgx.Identifier{s.schema}.Sanitize()
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "gatehouse-migrate:"+s.schema); err != nil {
			return fmt.Errorf("waiting for the schema lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
			return fmt.Errorf("creating the schema: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+schema+`.schema_migrations (version INTEGER PRIMARY KEY, applied_ns BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("creating schema_migrations: %w", err)
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+schema+`.schema_migrations`).Scan(&have); err != nil {
			return fmt.Errorf("reading the schema version: %w", err)
		}
		if have > SchemaVersion {
			return fmt.Errorf("the store has schema version %d, newer than this gatehouse knows (%d); run a newer gatehouse (the store is left untouched)", have, SchemaVersion)
		}
		for v := have + 1; v <= SchemaVersion; v++ {
			// The search path names the schema, so the tables land there.
			if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+schema); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("applying schema migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+schema+`.schema_migrations (version, applied_ns) VALUES ($1, $2)`, v, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("recording schema migration %d: %w", v, err)
			}
		}
		return nil
	})
}
