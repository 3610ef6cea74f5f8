// Package postgres is the store that several gateways share: the state of
// package store in one PostgreSQL schema, through pgx. Every write that
// must be seen whole by the other gateways is one transaction; the ones
// that must not interleave (audit appends, schema migrations) take a
// lock in the database, never one of the process.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Defaults of Options.
const (
	DefaultSchema         = "gatehouse"
	DefaultConnectTimeout = 5 * time.Second
	DefaultMaxConns       = 8
)

// Options say which database to use and how.
type Options struct {
	// URL is a postgres:// URL or a keyword/value string, as libpq reads
	// them; the PG* environment variables fill in what it leaves out.
	URL string
	// Password, when not empty, replaces the URL's (it comes from a
	// secret reference).
	Password string
	// Schema holds the tables (default DefaultSchema); created if missing.
	Schema string
	// ConnectTimeout bounds each connection attempt (default
	// DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// MaxConns bounds the pool (default DefaultMaxConns).
	MaxConns int32
	// NoMigrate opens a store a gateway made without creating or
	// changing its schema, which must be at this build's version: for
	// tools, which then need no more than the access they use (reading
	// the audit log needs SELECT alone).
	NoMigrate bool
}

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Store is the PostgreSQL store. It is safe for concurrent use, and any
// number of Stores, in any number of processes, may use one schema.
type Store struct {
	pool     *pgxpool.Pool
	schema   string
	describe string
	secrets  []string // never in an error
}

var _ store.Store = (*Store)(nil)

// Open connects to the database, creates the schema if it is missing and
// brings it up to date. Its errors say what failed and where, and never
// hold a password.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if !schemaRE.MatchString(o.Schema) {
		return nil, fmt.Errorf("schema %q must be 1-63 lower-case letters, digits or '_', not starting with a digit", o.Schema)
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	s := &Store{schema: o.Schema}
	if o.Password != "" {
		s.secrets = append(s.secrets, o.Password)
	}
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, s.clean(fmt.Errorf("the URL cannot be used: %w", err))
	}
	cc := cfg.ConnConfig
	if cc.Password != "" {
		s.secrets = append(s.secrets, cc.Password)
	}
	if o.Password != "" {
		cc.Password = o.Password
	}
	cc.ConnectTimeout = o.ConnectTimeout
	cc.RuntimeParams["search_path"] = o.Schema
	if cc.RuntimeParams["application_name"] == "" {
		cc.RuntimeParams["application_name"] = "gatehouse"
	}
	cfg.MaxConns = o.MaxConns
	s.describe = fmt.Sprintf("postgres %s/%s schema %s", net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), cc.Database, o.Schema)
	where := net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))) + "/" + cc.Database

	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, s.clean(fmt.Errorf("connecting to PostgreSQL at %s: %w", where, err))
	}
	pctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout+time.Second)
	err = s.pool.Ping(pctx)
	cancel()
	if err != nil {
		s.pool.Close()
		return nil, s.clean(fmt.Errorf("connecting to PostgreSQL at %s: %w", where, err))
	}
	check := s.migrate
	if o.NoMigrate {
		check = s.checkVersion
	}
	if err := check(ctx); err != nil {
		s.pool.Close()
		return nil, s.clean(fmt.Errorf("PostgreSQL at %s, schema %s: %w", where, o.Schema, err))
	}
	return s, nil
}

// Describe names the database and schema in use, for a log line: no user,
// no password.
func (s *Store) Describe() string { return s.describe }

// Close closes the connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// clean keeps the passwords out of err's text.
func (s *Store) clean(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	redacted := msg
	for _, p := range s.secrets {
		redacted = strings.ReplaceAll(redacted, p, "REDACTED")
	}
	if redacted == msg {
		return err
	}
	return errors.New(redacted)
}

// tx runs fn in a transaction.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// PostgreSQL error codes the store tells apart.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// checkText refuses a value PostgreSQL's text cannot hold as it is (a NUL
// byte, or bytes that are not UTF-8): storing something else would break,
// among others, the audit log's hashes.
func checkText(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		name, v := fields[i], fields[i+1]
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("postgres: %s contains a NUL byte, which PostgreSQL text cannot hold", name)
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("postgres: %s is not valid UTF-8, which PostgreSQL text requires", name)
		}
	}
	return nil
}

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
