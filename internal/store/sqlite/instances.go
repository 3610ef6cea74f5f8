package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// PutInstance implements store.Instances.
func (s *Store) PutInstance(ctx context.Context, in store.Instance) error {
	md, err := json.Marshal(in.Metadata)
	if err != nil {
		return err
	}
	_, err = s.writer.ExecContext(ctx, `
INSERT INTO instances (`+instanceColumns+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
`+replaceInstance,
		in.Service, in.ID, in.Scheme, in.Address, in.Port, in.Weight, in.Zone, string(md), int64(in.TTL),
		ns(in.Registered), ns(in.Heartbeat), ns(in.Expires), in.Actor)
	return err
}

// AddInstance implements store.Instances, in one statement: SQLite runs
// it under the database's write lock, so two handles (two gateways on
// one file) cannot together pass the bounds.
func (s *Store) AddInstance(ctx context.Context, in store.Instance, now time.Time, maxInstances, maxServices int) error {
	md, err := json.Marshal(in.Metadata)
	if err != nil {
		return err
	}
	if maxServices <= 0 {
		maxServices = math.MaxInt32
	}
	t := now.UnixNano()
	res, err := s.writer.ExecContext(ctx, `
INSERT INTO instances (`+instanceColumns+`)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
WHERE EXISTS (SELECT 1 FROM instances WHERE service = ? AND id = ? AND expires_ns > ?)
   OR ((SELECT count(*) FROM instances WHERE service = ? AND expires_ns > ?) < ?
       AND (EXISTS (SELECT 1 FROM instances WHERE service = ? AND expires_ns > ?)
            OR (SELECT count(DISTINCT service) FROM instances WHERE expires_ns > ?) < ?))
`+replaceInstance,
		in.Service, in.ID, in.Scheme, in.Address, in.Port, in.Weight, in.Zone, string(md), int64(in.TTL),
		ns(in.Registered), ns(in.Heartbeat), ns(in.Expires), in.Actor,
		in.Service, in.ID, t,
		in.Service, t, maxInstances,
		in.Service, t,
		t, maxServices)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	// Refused; which bound, for the message (read after the fact).
	var held int
	if err := s.writer.QueryRowContext(ctx, `SELECT count(*) FROM instances WHERE service = ? AND expires_ns > ?`, in.Service, t).Scan(&held); err != nil {
		return err
	}
	if held >= maxInstances {
		return store.ErrTooManyInstances
	}
	return store.ErrTooManyServices
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

func scanInstance(sc interface{ Scan(...any) error }) (store.Instance, error) {
	var (
		in                  store.Instance
		md                  string
		ttl, reg, hb, expNS int64
	)
	err := sc.Scan(&in.Service, &in.ID, &in.Scheme, &in.Address, &in.Port, &in.Weight, &in.Zone, &md, &ttl, &reg, &hb, &expNS, &in.Actor)
	if err != nil {
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
	row := s.reader.QueryRowContext(ctx, `SELECT `+instanceColumns+` FROM instances WHERE service = ? AND id = ?`, service, id)
	in, err := scanInstance(row)
	if errors.Is(err, sql.ErrNoRows) {
		return in, store.ErrNotFound
	}
	return in, err
}

// DeleteInstance implements store.Instances.
func (s *Store) DeleteInstance(ctx context.Context, service, id string) error {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM instances WHERE service = ? AND id = ?`, service, id)
	return affected(res, err)
}

// ListInstances implements store.Instances.
func (s *Store) ListInstances(ctx context.Context, service string) ([]store.Instance, error) {
	q := `SELECT ` + instanceColumns + ` FROM instances`
	var args []any
	if service != "" {
		q += ` WHERE service = ?`
		args = append(args, service)
	}
	rows, err := s.reader.QueryContext(ctx, q+` ORDER BY service, id`, args...)
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
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// ExpireInstance implements store.Instances.
func (s *Store) ExpireInstance(ctx context.Context, service, id string, now time.Time) error {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM instances WHERE service = ? AND id = ? AND expires_ns <= ?`, service, id, now.UnixNano())
	return affected(res, err)
}
