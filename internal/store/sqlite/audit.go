package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// AppendAudit implements store.AuditLog. The last record is read and the
// new one written in one immediate transaction, so the chain has no fork
// even with several writers.
func (s *Store) AppendAudit(ctx context.Context, r store.AuditRecord) (store.AuditRecord, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var (
			seq  int64
			prev string
		)
		err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		r.Seq, r.PrevHash = seq+1, prev
		if r.Time.IsZero() {
			r.Time = time.Now()
		}
		r.Time = r.Time.UTC()
		r.Hash = store.AuditHash(r)
		_, err = tx.ExecContext(ctx, `
INSERT INTO audit_log (seq, time_ns, actor, action, target, outcome, detail, before, after, prev_hash, hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
	rows, err := s.reader.QueryContext(ctx, `
SELECT seq, time_ns, actor, action, target, outcome, detail, before, after, prev_hash, hash
FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
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
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	res, err := s.writer.ExecContext(ctx, `INSERT INTO config_revisions (version, time_ns, source, actor, text) VALUES (?, ?, ?, ?, ?)`,
		r.Version, r.Time.UnixNano(), r.Source, r.Actor, r.Text)
	if err != nil {
		return r, err
	}
	r.Seq, err = res.LastInsertId()
	return r, err
}

// ConfigText implements store.ConfigRevisions.
func (s *Store) ConfigText(ctx context.Context, version string) (string, error) {
	var text string
	err := s.reader.QueryRowContext(ctx, `SELECT text FROM config_revisions WHERE version = ? AND text != '' ORDER BY seq DESC LIMIT 1`, version).Scan(&text)
	if errors.Is(err, sql.ErrNoRows) {
		return "", store.ErrNotFound
	}
	return text, err
}

// ListConfigRevisions implements store.ConfigRevisions.
func (s *Store) ListConfigRevisions(ctx context.Context, limit int) ([]store.ConfigRevision, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT seq, version, time_ns, source, actor FROM config_revisions ORDER BY seq DESC LIMIT ?`, limit)
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
	var v int64
	err := s.writer.QueryRowContext(ctx, `
INSERT INTO counters (key, value, expires_ns) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
	value = CASE WHEN counters.expires_ns <= ? THEN excluded.value ELSE counters.value + excluded.value END,
	expires_ns = CASE WHEN counters.expires_ns <= ? THEN excluded.expires_ns ELSE counters.expires_ns END
RETURNING value`, key, delta, expires.UnixNano(), now.UnixNano(), now.UnixNano()).Scan(&v)
	return v, err
}

// GetCounter implements store.Counters.
func (s *Store) GetCounter(ctx context.Context, key string, now time.Time) (int64, error) {
	var v int64
	err := s.reader.QueryRowContext(ctx, `SELECT value FROM counters WHERE key = ? AND expires_ns > ?`, key, now.UnixNano()).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// DeleteExpiredCounters implements store.Counters.
func (s *Store) DeleteExpiredCounters(ctx context.Context, now time.Time) (int, error) {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM counters WHERE expires_ns <= ?`, now.UnixNano())
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
