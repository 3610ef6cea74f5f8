package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// PutPublishedKeys implements store.PublishedKeys in one transaction and
// one round trip.
func (s *Store) PutPublishedKeys(ctx context.Context, keys []store.PublishedKey) error {
	if len(keys) == 0 {
		return nil
	}
	for _, k := range keys {
		if err := checkText("key ID", k.KID, "key algorithm", k.Alg, "key", string(k.JWK)); err != nil {
			return fmt.Errorf("published key %q: %w", k.KID, err)
		}
	}
	var b pgx.Batch
	for _, k := range keys {
		b.Queue(`
INSERT INTO published_keys (kid, alg, jwk, activates_ns, expires_ns) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (kid) DO UPDATE SET expires_ns = GREATEST(published_keys.expires_ns, excluded.expires_ns)`,
			k.KID, k.Alg, string(k.JWK), ns(k.Activates), ns(k.Expires))
	}
	return s.tx(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, &b).Close() })
}

// DeletePublishedKeys implements store.PublishedKeys.
func (s *Store) DeletePublishedKeys(ctx context.Context, kids []string) error {
	if len(kids) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, `DELETE FROM published_keys WHERE kid = ANY($1)`, kids)
	return err
}

// ListPublishedKeys implements store.PublishedKeys.
func (s *Store) ListPublishedKeys(ctx context.Context, now time.Time) ([]store.PublishedKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT kid, alg, jwk, activates_ns, expires_ns FROM published_keys
WHERE expires_ns > $1 ORDER BY kid COLLATE "C"`, ns(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
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
	tag, err := s.pool.Exec(ctx, `DELETE FROM published_keys WHERE expires_ns <= $1`, ns(now))
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
