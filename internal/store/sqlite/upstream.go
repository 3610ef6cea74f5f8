package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// PutUpstreamHours implements store.UpstreamHours in one write
// transaction. It begins IMMEDIATE (it holds the database's write lock
// before its first statement), so two processes writing at once wait for
// each other and cannot deadlock, whatever the order of their rows; of two
// rows of one batch with the same key, the later is kept.
func (s *Store) PutUpstreamHours(ctx context.Context, rows []store.UpstreamHour) error {
	if len(rows) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `
INSERT INTO upstream_hours (process, api, operation, hour, data, updated_ns) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (process, api, operation, hour) DO UPDATE SET data = excluded.data, updated_ns = excluded.updated_ns`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range rows {
			data := r.Data
			if data == nil {
				data = []byte{} // an empty row, not NULL
			}
			if _, err := stmt.ExecContext(ctx, r.Process, r.API, r.Operation, r.Hour, data, ns(r.Updated)); err != nil {
				return fmt.Errorf("saving upstream hour %d of %q/%q (process %q): %w", r.Hour, r.API, r.Operation, r.Process, err)
			}
		}
		return nil
	})
}

// ListUpstreamHours implements store.UpstreamHours.
func (s *Store) ListUpstreamHours(ctx context.Context, since int64) ([]store.UpstreamHour, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT process, api, operation, hour, data, updated_ns FROM upstream_hours
WHERE hour >= ? ORDER BY process, api, operation, hour`, since)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.UpstreamHour
	for rows.Next() {
		var (
			r       store.UpstreamHour
			updated int64
		)
		if err := rows.Scan(&r.Process, &r.API, &r.Operation, &r.Hour, &r.Data, &updated); err != nil {
			return nil, err
		}
		r.Updated = fromNS(updated)
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteUpstreamHoursBefore implements store.UpstreamHours.
func (s *Store) DeleteUpstreamHoursBefore(ctx context.Context, before int64) (int, error) {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM upstream_hours WHERE hour < ?`, before)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
