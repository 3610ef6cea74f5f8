package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

func bumpKeys(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE meta SET value = value + 1 WHERE name = 'keys_revision'`)
	return err
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func list(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// CreateConsumer implements store.Consumers.
func (s *Store) CreateConsumer(ctx context.Context, c store.Consumer) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO consumers (name, groups_, roles, scopes, created_ns, updated_ns) VALUES (?, ?, ?, ?, ?, ?)`,
			c.Name, list(c.Groups), list(c.Roles), list(c.Scopes), ns(c.Created), ns(c.Updated))
		if isUnique(err) || err != nil && strings.Contains(err.Error(), "PRIMARY KEY") {
			return store.ErrConflict
		}
		if err != nil {
			return err
		}
		return bumpKeys(ctx, tx)
	})
}

func scanConsumer(sc interface{ Scan(...any) error }) (store.Consumer, error) {
	var (
		c                     store.Consumer
		groups, roles, scopes string
		created, updated      int64
	)
	if err := sc.Scan(&c.Name, &groups, &roles, &scopes, &created, &updated); err != nil {
		return c, err
	}
	for _, f := range []struct {
		s   string
		dst *[]string
	}{{groups, &c.Groups}, {roles, &c.Roles}, {scopes, &c.Scopes}} {
		if err := json.Unmarshal([]byte(f.s), f.dst); err != nil {
			return c, err
		}
	}
	c.Created, c.Updated = fromNS(created), fromNS(updated)
	return c, nil
}

// GetConsumer implements store.Consumers.
func (s *Store) GetConsumer(ctx context.Context, name string) (store.Consumer, error) {
	c, err := scanConsumer(s.reader.QueryRowContext(ctx, `SELECT name, groups_, roles, scopes, created_ns, updated_ns FROM consumers WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return c, store.ErrNotFound
	}
	return c, err
}

// ListConsumers implements store.Consumers.
func (s *Store) ListConsumers(ctx context.Context) ([]store.Consumer, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT name, groups_, roles, scopes, created_ns, updated_ns FROM consumers ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Consumer
	for rows.Next() {
		c, err := scanConsumer(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteConsumer implements store.Consumers.
func (s *Store) DeleteConsumer(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM consumers WHERE name = ?`, name)
		if err := affected(res, err); err != nil {
			return err
		}
		return bumpKeys(ctx, tx)
	})
}

// PutKey implements store.Consumers.
func (s *Store) PutKey(ctx context.Context, k store.Key) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM consumers WHERE name = ?`, k.Consumer).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `
INSERT INTO consumer_keys (consumer, slot, hash, created_ns) VALUES (?, ?, ?, ?)
ON CONFLICT (consumer, slot) DO UPDATE SET hash = excluded.hash, created_ns = excluded.created_ns`,
			k.Consumer, k.Slot, k.Hash[:], ns(k.Created))
		if isUnique(err) {
			return store.ErrConflict
		}
		if err != nil {
			return err
		}
		return bumpKeys(ctx, tx)
	})
}

// DeleteKey implements store.Consumers.
func (s *Store) DeleteKey(ctx context.Context, consumer, slot string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM consumer_keys WHERE consumer = ? AND slot = ?`, consumer, slot)
		if err := affected(res, err); err != nil {
			return err
		}
		return bumpKeys(ctx, tx)
	})
}

// ListKeys implements store.Consumers.
func (s *Store) ListKeys(ctx context.Context, consumer string) ([]store.Key, error) {
	q := `SELECT consumer, slot, hash, created_ns FROM consumer_keys`
	var args []any
	if consumer != "" {
		q += ` WHERE consumer = ?`
		args = append(args, consumer)
	}
	rows, err := s.reader.QueryContext(ctx, q+` ORDER BY consumer, slot`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Key
	for rows.Next() {
		var (
			k       store.Key
			h       []byte
			created int64
		)
		if err := rows.Scan(&k.Consumer, &k.Slot, &h, &created); err != nil {
			return nil, err
		}
		if len(h) != len(k.Hash) {
			return nil, errors.New("sqlite: a stored key hash has the wrong length")
		}
		copy(k.Hash[:], h)
		k.Created = fromNS(created)
		out = append(out, k)
	}
	return out, rows.Err()
}

// KeysRevision implements store.Consumers.
func (s *Store) KeysRevision(ctx context.Context) (int64, error) {
	var v int64
	err := s.reader.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'keys_revision'`).Scan(&v)
	return v, err
}
