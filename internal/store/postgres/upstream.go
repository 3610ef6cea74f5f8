package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// PutUpstreamHours implements store.UpstreamHours: one transaction, one
// round trip (a batch). The rows are written ordered by their key, the
// same order in every gateway, so that two batches with rows in common
// wait for each other rather than deadlock; of two rows of one batch with
// the same key, the later is kept.
func (s *Store) PutUpstreamHours(ctx context.Context, rows []store.UpstreamHour) error {
	if len(rows) == 0 {
		return nil
	}
	for _, r := range rows {
		if err := checkText("process name", r.Process, "API name", r.API, "operation name", r.Operation); err != nil {
			return fmt.Errorf("upstream hour %d of %q/%q (process %q): %w", r.Hour, r.API, r.Operation, r.Process, err)
		}
	}
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b store.UpstreamHour) int {
		return cmp.Or(strings.Compare(a.Process, b.Process), strings.Compare(a.API, b.API),
			strings.Compare(a.Operation, b.Operation), cmp.Compare(a.Hour, b.Hour))
	})
	var b pgx.Batch
	for _, r := range sorted {
		data := r.Data
		if data == nil {
			data = []byte{} // an empty row, not NULL
		}
		b.Queue(`
INSERT INTO upstream_hours (process, api, operation, hour, data, updated_ns) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (process, api, operation, hour) DO UPDATE SET data = excluded.data, updated_ns = excluded.updated_ns`,
			r.Process, r.API, r.Operation, r.Hour, data, ns(r.Updated))
	}
	return s.tx(ctx, func(tx pgx.Tx) error { return tx.SendBatch(ctx, &b).Close() })
}

// ListUpstreamHours implements store.UpstreamHours.
func (s *Store) ListUpstreamHours(ctx context.Context, since int64) ([]store.UpstreamHour, error) {
	rows, err := s.pool.Query(ctx, `SELECT process, api, operation, hour, data, updated_ns FROM upstream_hours
WHERE hour >= $1 ORDER BY process COLLATE "C", api COLLATE "C", operation COLLATE "C", hour`, since)
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
	tag, err := s.pool.Exec(ctx, `DELETE FROM upstream_hours WHERE hour < $1`, before)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
