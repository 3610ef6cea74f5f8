package postgres

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// bumpKeys changes the keys' revision in the transaction that changes a
// consumer or a key, so that every gateway's key ring sees the change.
func bumpKeys(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `UPDATE meta SET value = value + 1 WHERE name = 'keys_revision'`)
	return err
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
	if err := checkText("consumer name", c.Name); err != nil {
		return err
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO consumers (name, groups_, roles, scopes, created_ns, updated_ns) VALUES ($1, $2, $3, $4, $5, $6)`,
			c.Name, list(c.Groups), list(c.Roles), list(c.Scopes), ns(c.Created), ns(c.Updated))
		if isCode(err, codeUniqueViolation) {
			return store.ErrConflict
		}
		if err != nil {
			return err
		}
		return bumpKeys(ctx, tx)
	})
}

const consumerColumns = `name, groups_, roles, scopes, created_ns, updated_ns`

func scanConsumer(row pgx.Row) (store.Consumer, error) {
	var (
		c                     store.Consumer
		groups, roles, scopes string
		created, updated      int64
	)
	if err := row.Scan(&c.Name, &groups, &roles, &scopes, &created, &updated); err != nil {
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
	c, err := scanConsumer(s.pool.QueryRow(ctx, `SELECT `+consumerColumns+` FROM consumers WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, store.ErrNotFound
	}
	return c, err
}

// ListConsumers implements store.Consumers.
func (s *Store) ListConsumers(ctx context.Context) ([]store.Consumer, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+consumerColumns+` FROM consumers ORDER BY name COLLATE "C"`)
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
	return s.tx(ctx, func(tx pgx.Tx) error {
		if err := affected(tx.Exec(ctx, `DELETE FROM consumers WHERE name = $1`, name)); err != nil {
			return err
		}
		return bumpKeys(ctx, tx)
	})
}

// PutKey implements store.Consumers.
func (s *Store) PutKey(ctx context.Context, k store.Key) error {
	if err := checkText("consumer name", k.Consumer, "key slot", k.Slot); err != nil {
		return err
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
INSERT INTO consumer_keys (consumer, slot, hash, created_ns) VALUES ($1, $2, $3, $4)
ON CONFLICT (consumer, slot) DO UPDATE SET hash = excluded.hash, created_ns = excluded.created_ns`,
			k.Consumer, k.Slot, k.Hash[:], ns(k.Created))
		switch {
		case isCode(err, codeForeignKeyViolation):
			return store.ErrNotFound // no such consumer
		case isCode(err, codeUniqueViolation):
			return store.ErrConflict // another slot holds the hash
		case err != nil:
			return err
		}
		return bumpKeys(ctx, tx)
	})
}

// DeleteKey implements store.Consumers.
func (s *Store) DeleteKey(ctx context.Context, consumer, slot string) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if err := affected(tx.Exec(ctx, `DELETE FROM consumer_keys WHERE consumer = $1 AND slot = $2`, consumer, slot)); err != nil {
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
		q += ` WHERE consumer = $1`
		args = append(args, consumer)
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY consumer COLLATE "C", slot COLLATE "C"`, args...)
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
			return nil, errors.New("postgres: a stored key hash has the wrong length")
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
	err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE name = 'keys_revision'`).Scan(&v)
	return v, err
}
