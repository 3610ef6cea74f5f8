package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// AppendAudit implements store.AuditLog. The table is locked against
// other writers (readers go on) for the transaction that reads the last
// record and writes the next, so the chain has no fork whatever the
// number of gateways.
func (s *Store) AppendAudit(ctx context.Context, r store.AuditRecord) (store.AuditRecord, error) {
	if err := checkText("audit actor", r.Actor, "audit action", r.Action, "audit target", r.Target, "audit outcome", r.Outcome,
		"audit detail", r.Detail, "audit before", r.Before, "audit after", r.After); err != nil {
		return r, err
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE audit_log IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		var (
			seq  int64
			prev string
		)
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		r.Seq, r.PrevHash = seq+1, prev
		r.Hash = store.AuditHash(r)
		_, err = tx.Exec(ctx, `
INSERT INTO audit_log (seq, time_ns, actor, action, target, outcome, detail, before, after, prev_hash, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			r.Seq, r.Time.UnixNano(), r.Actor, r.Action, r.Target, r.Outcome, r.Detail, r.Before, r.After, r.PrevHash, r.Hash)
		return err
	})
	return r, err
}

// ListAudit implements store.AuditLog.
func (s *Store) ListAudit(ctx context.Context, after int64, limit int) ([]store.AuditRecord, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `
SELECT seq, time_ns, actor, action, target, outcome, detail, before, after, prev_hash, hash
FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.AuditRecord
	for rows.Next() {
		var (
			r  store.AuditRecord
			tn int64
		)
		if err := rows.Scan(&r.Seq, &tn, &r.Actor, &r.Action, &r.Target, &r.Outcome, &r.Detail, &r.Before, &r.After, &r.PrevHash, &r.Hash); err != nil {
			return nil, err
		}
		r.Time = time.Unix(0, tn).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// AddConfigRevision implements store.ConfigRevisions.
func (s *Store) AddConfigRevision(ctx context.Context, r store.ConfigRevision) (store.ConfigRevision, error) {
	if err := checkText("configuration version", r.Version, "revision source", r.Source, "revision actor", r.Actor, "configuration text", r.Text); err != nil {
		return r, err
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	err := s.pool.QueryRow(ctx, `INSERT INTO config_revisions (version, time_ns, source, actor, text) VALUES ($1, $2, $3, $4, $5) RETURNING seq`,
		r.Version, r.Time.UnixNano(), r.Source, r.Actor, r.Text).Scan(&r.Seq)
	return r, err
}

// ConfigText implements store.ConfigRevisions.
func (s *Store) ConfigText(ctx context.Context, version string) (string, error) {
	var text string
	err := s.pool.QueryRow(ctx, `SELECT text FROM config_revisions WHERE version = $1 AND text <> '' ORDER BY seq DESC LIMIT 1`, version).Scan(&text)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", store.ErrNotFound
	}
	return text, err
}

// ListConfigRevisions implements store.ConfigRevisions.
func (s *Store) ListConfigRevisions(ctx context.Context, limit int) ([]store.ConfigRevision, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, version, time_ns, source, actor FROM config_revisions ORDER BY seq DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.ConfigRevision
	for rows.Next() {
		var (
			r  store.ConfigRevision
			tn int64
		)
		if err := rows.Scan(&r.Seq, &r.Version, &tn, &r.Source, &r.Actor); err != nil {
			return nil, err
		}
		r.Time = time.Unix(0, tn).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// AddCounter implements store.Counters.
func (s *Store) AddCounter(ctx context.Context, key string, delta int64, expires, now time.Time) (int64, error) {
	if err := checkText("counter key", key); err != nil {
		return 0, err
	}
	var v int64
	err := s.pool.QueryRow(ctx, `
INSERT INTO counters AS c (key, value, expires_ns) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET
	value = CASE WHEN c.expires_ns <= $4 THEN excluded.value ELSE c.value + excluded.value END,
	expires_ns = CASE WHEN c.expires_ns <= $4 THEN excluded.expires_ns ELSE c.expires_ns END
RETURNING value`, key, delta, expires.UnixNano(), now.UnixNano()).Scan(&v)
	return v, err
}

// GetCounter implements store.Counters.
func (s *Store) GetCounter(ctx context.Context, key string, now time.Time) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT value FROM counters WHERE key = $1 AND expires_ns > $2`, key, now.UnixNano()).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// DeleteExpiredCounters implements store.Counters.
func (s *Store) DeleteExpiredCounters(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM counters WHERE expires_ns <= $1`, now.UnixNano())
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
