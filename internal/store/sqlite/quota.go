package sqlite

import (
	"context"
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
