package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// PutInstance implements store.Instances.
func (s *Store) PutInstance(ctx context.Context, in store.Instance) error {
	return putInstance(ctx, s.pool, in)
}

// putInstance writes in through e (the pool, or a transaction).
func putInstance(ctx context.Context, e interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, in store.Instance) error {
	if err := checkText("service", in.Service, "instance ID", in.ID, "scheme", in.Scheme, "address", in.Address, "zone", in.Zone, "actor", in.Actor); err != nil {
		return err
	}
	md, err := json.Marshal(in.Metadata) // JSON escapes what text cannot hold
	if err != nil {
		return err
	}
	_, err = e.Exec(ctx, `
INSERT INTO instances (`+instanceColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
`+replaceInstance,
		in.Service, in.ID, in.Scheme, in.Address, in.Port, in.Weight, in.Zone, string(md), int64(in.TTL),
		ns(in.Registered), ns(in.Heartbeat), ns(in.Expires), in.Actor)
	return err
}

// AddInstance implements store.Instances: the counts and the write in one
// transaction under an advisory lock of the schema's registrations, so
// gateways registering at once take turns (registrations are rare).
func (s *Store) AddInstance(ctx context.Context, in store.Instance, now time.Time, maxInstances, maxServices int) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "gatehouse-registrations:"+s.schema); err != nil {
		return err
	}
	t := now.UnixNano()
	var exists bool
	var held, services int
	if err := tx.QueryRow(ctx, `
SELECT EXISTS (SELECT 1 FROM instances WHERE service = $1 AND id = $2 AND expires_ns > $3),
       (SELECT count(*) FROM instances WHERE service = $1 AND expires_ns > $3),
       (SELECT count(DISTINCT service) FROM instances WHERE expires_ns > $3)`,
		in.Service, in.ID, t).Scan(&exists, &held, &services); err != nil {
		return err
	}
	if !exists {
		switch {
		case held >= maxInstances:
			return store.ErrTooManyInstances
		case held == 0 && maxServices > 0 && services >= maxServices:
			return store.ErrTooManyServices
		}
	}
	if err := putInstance(ctx, tx, in); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

const instanceColumns = `service, id, scheme, address, port, weight, zone, metadata, ttl_ns, registered_ns, heartbeat_ns, expires_ns, actor`

// replaceInstance ends an INSERT of instanceColumns: an instance that
// exists is replaced.
const replaceInstance = `
ON CONFLICT (service, id) DO UPDATE SET
	scheme = excluded.scheme, address = excluded.address, port = excluded.port, weight = excluded.weight,
	zone = excluded.zone, metadata = excluded.metadata, ttl_ns = excluded.ttl_ns,
	registered_ns = excluded.registered_ns, heartbeat_ns = excluded.heartbeat_ns,
	expires_ns = excluded.expires_ns, actor = excluded.actor`

func scanInstance(row pgx.Row) (store.Instance, error) {
	var (
		in                  store.Instance
		md                  string
		ttl, reg, hb, expNS int64
	)
	if err := row.Scan(&in.Service, &in.ID, &in.Scheme, &in.Address, &in.Port, &in.Weight, &in.Zone, &md, &ttl, &reg, &hb, &expNS, &in.Actor); err != nil {
		return in, err
	}
	if md != "" && md != "null" {
		if err := json.Unmarshal([]byte(md), &in.Metadata); err != nil {
			return in, err
		}
	}
	in.TTL = time.Duration(ttl)
	in.Registered, in.Heartbeat, in.Expires = fromNS(reg), fromNS(hb), fromNS(expNS)
	return in, nil
}

// GetInstance implements store.Instances.
func (s *Store) GetInstance(ctx context.Context, service, id string) (store.Instance, error) {
	in, err := scanInstance(s.pool.QueryRow(ctx, `SELECT `+instanceColumns+` FROM instances WHERE service = $1 AND id = $2`, service, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return in, store.ErrNotFound
	}
	return in, err
}

// DeleteInstance implements store.Instances.
func (s *Store) DeleteInstance(ctx context.Context, service, id string) error {
	return affected(s.pool.Exec(ctx, `DELETE FROM instances WHERE service = $1 AND id = $2`, service, id))
}

// ExpireInstance implements store.Instances: one statement, so that a
// heartbeat through another gateway either comes before it (and the row
// stays) or finds the row gone.
func (s *Store) ExpireInstance(ctx context.Context, service, id string, now time.Time) error {
	return affected(s.pool.Exec(ctx, `DELETE FROM instances WHERE service = $1 AND id = $2 AND expires_ns <= $3`, service, id, now.UnixNano()))
}

// ListInstances implements store.Instances.
func (s *Store) ListInstances(ctx context.Context, service string) ([]store.Instance, error) {
	q := `SELECT ` + instanceColumns + ` FROM instances`
	var args []any
	if service != "" {
		q += ` WHERE service = $1`
		args = append(args, service)
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY service COLLATE "C", id COLLATE "C"`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Instance
	for rows.Next() {
		in, err := scanInstance(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// affected turns "no row changed" into store.ErrNotFound.
func affected(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}
