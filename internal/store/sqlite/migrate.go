package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are applied in order, each once, each in its own
// transaction; a migration is never edited once released: add a new one.
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
	ttl_ns        INTEGER NOT NULL,
	registered_ns INTEGER NOT NULL,
	heartbeat_ns  INTEGER NOT NULL,
	expires_ns    INTEGER NOT NULL,
	actor         TEXT NOT NULL,
	PRIMARY KEY (service, id)
);
CREATE TABLE consumers (
	name       TEXT PRIMARY KEY,
	groups_    TEXT NOT NULL,
	roles      TEXT NOT NULL,
	scopes     TEXT NOT NULL,
	created_ns INTEGER NOT NULL,
	updated_ns INTEGER NOT NULL
);
CREATE TABLE consumer_keys (
	consumer   TEXT NOT NULL REFERENCES consumers(name) ON DELETE CASCADE,
	slot       TEXT NOT NULL,
	hash       BLOB NOT NULL UNIQUE,
	created_ns INTEGER NOT NULL,
	PRIMARY KEY (consumer, slot)
);
CREATE TABLE meta (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
INSERT INTO meta (name, value) VALUES ('keys_revision', 0);
CREATE TABLE config_revisions (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	version TEXT NOT NULL,
	time_ns INTEGER NOT NULL,
	source  TEXT NOT NULL,
	actor   TEXT NOT NULL
);
CREATE TABLE counters (
	key        TEXT PRIMARY KEY,
	value      INTEGER NOT NULL,
	expires_ns INTEGER NOT NULL
);
CREATE INDEX counters_expiry ON counters (expires_ns);
CREATE TABLE audit_log (
	seq       INTEGER PRIMARY KEY,
	time_ns   INTEGER NOT NULL,
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
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
`,
	// quota counters (moved from quotas.json in the data directory)
	2: `
CREATE TABLE quota_counters (
	api       TEXT NOT NULL,
	operation TEXT NOT NULL,
	name      TEXT NOT NULL,
	key_spec  TEXT NOT NULL,
	key       TEXT NOT NULL,
	start_s   INTEGER NOT NULL,
	count     INTEGER NOT NULL,
	PRIMARY KEY (api, operation, name, key_spec, key)
);
`,
	// the text of each loaded configuration, for history and diffs
	3: `
ALTER TABLE config_revisions ADD COLUMN text TEXT NOT NULL DEFAULT '';
CREATE INDEX config_revisions_version ON config_revisions (version, seq);
`,
	// the public signing keys the gateways publish to each other, and the
	// dashboard's sessions and sign-ins in progress
	4: `
CREATE TABLE published_keys (
	kid          TEXT PRIMARY KEY,
	alg          TEXT NOT NULL,
	jwk          TEXT NOT NULL,
	activates_ns INTEGER NOT NULL,
	expires_ns   INTEGER NOT NULL
);
CREATE INDEX published_keys_expiry ON published_keys (expires_ns);
CREATE TABLE dashboard_sessions (
	key          TEXT PRIMARY KEY,
	scope        TEXT NOT NULL,
	user_        TEXT NOT NULL,
	name         TEXT NOT NULL,
	role         INTEGER NOT NULL,
	csrf         TEXT NOT NULL,
	created_ns   INTEGER NOT NULL,
	last_seen_ns INTEGER NOT NULL
);
CREATE INDEX dashboard_sessions_seen ON dashboard_sessions (last_seen_ns);
CREATE TABLE dashboard_logins (
	key        TEXT PRIMARY KEY,
	verifier   TEXT NOT NULL,
	nonce      TEXT NOT NULL,
	return_to  TEXT NOT NULL,
	peer       TEXT NOT NULL,
	created_ns INTEGER NOT NULL
);
CREATE INDEX dashboard_logins_created ON dashboard_logins (created_ns);
`,
	// each gateway process's hours of upstream statistics, for the
	// suggested timeouts and limits
	5: `
CREATE TABLE upstream_hours (
	process    TEXT NOT NULL,
	api        TEXT NOT NULL,
	operation  TEXT NOT NULL,
	hour       INTEGER NOT NULL,
	data       BLOB NOT NULL,
	updated_ns INTEGER NOT NULL,
	PRIMARY KEY (process, api, operation, hour)
);
CREATE INDEX upstream_hours_hour ON upstream_hours (hour);
`,
}

// SchemaVersion is the schema version this build writes.
var SchemaVersion = len(migrations) - 1

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_ns INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("%s is not a usable database: %w", FileName, err)
	}
	var have int
	if err := s.writer.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("reading the schema version: %w", err)
	}
	if have > SchemaVersion {
		return fmt.Errorf("the store has schema version %d, newer than this gatehouse knows (%d); run a newer gatehouse (the store is left untouched)", have, SchemaVersion)
	}
	for v := have + 1; v <= SchemaVersion; v++ {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_ns) VALUES (?, ?)`, v, time.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("applying schema migration %d: %w", v, err)
		}
	}
	return nil
}
