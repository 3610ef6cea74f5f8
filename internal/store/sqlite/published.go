package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// PutPublishedKeys implements store.PublishedKeys in one transaction.
func (s *Store) PutPublishedKeys(ctx context.Context, keys []store.PublishedKey) error {
	if len(keys) == 0 {
		return nil
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, k := range keys {
		_, err := tx.ExecContext(ctx, `
INSERT INTO published_keys (kid, alg, jwk, activates_ns, expires_ns) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (kid) DO UPDATE SET expires_ns = MAX(published_keys.expires_ns, excluded.expires_ns)`,
			k.KID, k.Alg, string(k.JWK), ns(k.Activates), ns(k.Expires))
		if err != nil {
			return err
		}
	}
	return tx.Commit()
}

// DeletePublishedKeys implements store.PublishedKeys.
func (s *Store) DeletePublishedKeys(ctx context.Context, kids []string) error {
	if len(kids) == 0 {
		return nil
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, kid := range kids {
		if _, err := tx.ExecContext(ctx, `DELETE FROM published_keys WHERE kid = ?`, kid); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// ListPublishedKeys implements store.PublishedKeys.
func (s *Store) ListPublishedKeys(ctx context.Context, now time.Time) ([]store.PublishedKey, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT kid, alg, jwk, activates_ns, expires_ns FROM published_keys
WHERE expires_ns > ? ORDER BY kid`, ns(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanPublishedKeys(rows)
}

func scanPublishedKeys(rows *sql.Rows) ([]store.PublishedKey, error) {
	var out []store.PublishedKey
	for rows.Next() {
		var (
			k        store.PublishedKey
			jwk      string
			act, exp int64
		)
		if err := rows.Scan(&k.KID, &k.Alg, &jwk, &act, &exp); err != nil {
			return nil, err
		}
		k.JWK, k.Activates, k.Expires = []byte(jwk), fromNS(act), fromNS(exp)
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteExpiredPublishedKeys implements store.PublishedKeys.
func (s *Store) DeleteExpiredPublishedKeys(ctx context.Context, now time.Time) (int, error) {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM published_keys WHERE expires_ns <= ?`, ns(now))
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
