package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// LoadQuotaCounters implements store.QuotaCounters.
func (s *Store) LoadQuotaCounters(ctx context.Context) ([]store.QuotaCounter, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT api, operation, name, key_spec, key, start_s, count FROM quota_counters ORDER BY api, operation, name, key_spec, key`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.QuotaCounter
	for rows.Next() {
		var c store.QuotaCounter
		var start int64
		if err := rows.Scan(&c.API, &c.Operation, &c.Name, &c.KeySpec, &c.Key, &start, &c.Count); err != nil {
			return nil, err
		}
		c.Start = time.Unix(start, 0).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// ReplaceQuotaCounters implements store.QuotaCounters in one transaction.
func (s *Store) ReplaceQuotaCounters(ctx context.Context, cs []store.QuotaCounter) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM quota_counters`); err != nil {
		return err
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO quota_counters (api, operation, name, key_spec, key, start_s, count) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, c := range cs {
		if _, err := stmt.ExecContext(ctx, c.API, c.Operation, c.Name, c.KeySpec, c.Key, c.Start.Unix(), c.Count); err != nil {
			return fmt.Errorf("saving quota counter %s/%s/%s: %w", c.API, c.Operation, c.Name, err)
		}
	}
	return tx.Commit()
}

// AddQuotaCounts implements store.QuotaCounters in one write transaction.
func (s *Store) AddQuotaCounts(ctx context.Context, deltas []store.QuotaCounter) ([]store.QuotaCounter, error) {
	for _, d := range deltas {
		if d.Count < 0 {
			return nil, fmt.Errorf("quota counter %s/%s/%s: a negative count (%d) cannot be added", d.API, d.Operation, d.Name, d.Count)
		}
	}
	out := make([]store.QuotaCounter, len(deltas))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for i, d := range deltas {
			start := d.Start.Unix()
			var gotStart, gotCount int64
			err := tx.QueryRowContext(ctx, `
INSERT INTO quota_counters (api, operation, name, key_spec, key, start_s, count) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (api, operation, name, key_spec, key) DO UPDATE SET
	count = CASE
		WHEN quota_counters.start_s < excluded.start_s THEN excluded.count
		WHEN quota_counters.start_s = excluded.start_s THEN quota_counters.count + excluded.count
		ELSE quota_counters.count END,
	start_s = MAX(quota_counters.start_s, excluded.start_s)
RETURNING start_s, count`, d.API, d.Operation, d.Name, d.KeySpec, d.Key, start, d.Count).Scan(&gotStart, &gotCount)
			if err != nil {
				return fmt.Errorf("adding to quota counter %s/%s/%s: %w", d.API, d.Operation, d.Name, err)
			}
			out[i] = d
			out[i].Start, out[i].Count = time.Unix(gotStart, 0).UTC(), gotCount
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteQuotaCountersBefore implements store.QuotaCounters.
func (s *Store) DeleteQuotaCountersBefore(ctx context.Context, start time.Time) (int, error) {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM quota_counters WHERE start_s < ?`, start.Unix())
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
