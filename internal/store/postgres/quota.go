package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// LoadQuotaCounters implements store.QuotaCounters.
func (s *Store) LoadQuotaCounters(ctx context.Context) ([]store.QuotaCounter, error) {
	rows, err := s.pool.Query(ctx, `SELECT api, operation, name, key_spec, key, start_s, count FROM quota_counters
ORDER BY api COLLATE "C", operation COLLATE "C", name COLLATE "C", key_spec COLLATE "C", key`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.QuotaCounter
	for rows.Next() {
		var (
			c     store.QuotaCounter
			key   []byte
			start int64
		)
		if err := rows.Scan(&c.API, &c.Operation, &c.Name, &c.KeySpec, &key, &start, &c.Count); err != nil {
			return nil, err
		}
		c.Key, c.Start = string(key), time.Unix(start, 0).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

func checkCounter(c store.QuotaCounter) error {
	if err := checkText("quota API", c.API, "quota operation", c.Operation, "quota name", c.Name, "quota key specification", c.KeySpec); err != nil {
		return fmt.Errorf("quota counter %s/%s/%s: %w", c.API, c.Operation, c.Name, err)
	}
	return nil
}

// ReplaceQuotaCounters implements store.QuotaCounters in one transaction.
func (s *Store) ReplaceQuotaCounters(ctx context.Context, cs []store.QuotaCounter) error {
	for _, c := range cs {
		if err := checkCounter(c); err != nil {
			return err
		}
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM quota_counters`); err != nil {
			return err
		}
		rows := make([][]any, len(cs))
		for i, c := range cs {
			rows[i] = []any{c.API, c.Operation, c.Name, c.KeySpec, []byte(c.Key), c.Start.Unix(), c.Count}
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"quota_counters"}, []string{"api", "operation", "name", "key_spec", "key", "start_s", "count"}, pgx.CopyFromRows(rows))
		return err
	})
}

// addQuota is one delta's statement: the period decides whether the
// stored count is added to, replaced (the delta's period is later) or
// kept (it is earlier), and the row as it is after is returned.
const addQuota = `
INSERT INTO quota_counters AS q (api, operation, name, key_spec, key, start_s, count) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (api, operation, name, key_spec, key) DO UPDATE SET
	count = CASE
		WHEN q.start_s < excluded.start_s THEN excluded.count
		WHEN q.start_s = excluded.start_s THEN q.count + excluded.count
		ELSE q.count END,
	start_s = GREATEST(q.start_s, excluded.start_s)
RETURNING start_s, count`

// AddQuotaCounts implements store.QuotaCounters: one transaction, one
// round trip (a batch). The rows are written in one order, the same in
// every gateway, so that two batches with keys in common wait for each
// other rather than deadlock.
func (s *Store) AddQuotaCounts(ctx context.Context, deltas []store.QuotaCounter) ([]store.QuotaCounter, error) {
	for _, d := range deltas {
		if d.Count < 0 {
			return nil, fmt.Errorf("quota counter %s/%s/%s: a negative count (%d) cannot be added", d.API, d.Operation, d.Name, d.Count)
		}
		if err := checkCounter(d); err != nil {
			return nil, err
		}
	}
	order := make([]int, len(deltas))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int {
		a, b := &deltas[i], &deltas[j]
		return cmp.Or(strings.Compare(a.API, b.API), strings.Compare(a.Operation, b.Operation), strings.Compare(a.Name, b.Name),
			strings.Compare(a.KeySpec, b.KeySpec), strings.Compare(a.Key, b.Key))
	})
	out := make([]store.QuotaCounter, len(deltas))
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, i := range order {
			d := &deltas[i]
			b.Queue(addQuota, d.API, d.Operation, d.Name, d.KeySpec, []byte(d.Key), d.Start.Unix(), d.Count)
		}
		res := tx.SendBatch(ctx, &b)
		for _, i := range order {
			var start, count int64
			if err := res.QueryRow().Scan(&start, &count); err != nil {
				res.Close()
				d := &deltas[i]
				return fmt.Errorf("adding to quota counter %s/%s/%s: %w", d.API, d.Operation, d.Name, err)
			}
			out[i] = deltas[i]
			out[i].Start, out[i].Count = time.Unix(start, 0).UTC(), count
		}
		return res.Close()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteQuotaCountersBefore implements store.QuotaCounters.
func (s *Store) DeleteQuotaCountersBefore(ctx context.Context, start time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM quota_counters WHERE start_s < $1`, start.Unix())
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
