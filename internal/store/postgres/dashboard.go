package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// PutDashboardSession implements store.DashboardSessions.
func (s *Store) PutDashboardSession(ctx context.Context, d store.DashboardSession, max int) error {
	if err := checkText("session key", d.Key, "session scope", d.Scope, "session user", d.User, "session name", d.Name, "session CSRF token", d.CSRF); err != nil {
		return fmt.Errorf("dashboard session: %w", err)
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
INSERT INTO dashboard_sessions (key, scope, user_, name, role, csrf, created_ns, last_seen_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (key) DO UPDATE SET scope = excluded.scope, user_ = excluded.user_, name = excluded.name, role = excluded.role,
	csrf = excluded.csrf, created_ns = excluded.created_ns, last_seen_ns = excluded.last_seen_ns`,
			d.Key, d.Scope, d.User, d.Name, d.Role, d.CSRF, ns(d.Created), ns(d.LastSeen)); err != nil {
			return err
		}
		if max <= 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `
DELETE FROM dashboard_sessions WHERE key IN (
	SELECT key FROM dashboard_sessions ORDER BY last_seen_ns, key COLLATE "C"
	LIMIT GREATEST(0, (SELECT COUNT(*) FROM dashboard_sessions) - $1))`, max)
		return err
	})
}

// GetDashboardSession implements store.DashboardSessions.
func (s *Store) GetDashboardSession(ctx context.Context, key string) (store.DashboardSession, error) {
	d := store.DashboardSession{Key: key}
	if err := checkText("session key", key); err != nil {
		return d, store.ErrNotFound // no such key can be stored
	}
	var created, seen int64
	err := s.pool.QueryRow(ctx, `SELECT scope, user_, name, role, csrf, created_ns, last_seen_ns FROM dashboard_sessions WHERE key = $1`, key).
		Scan(&d.Scope, &d.User, &d.Name, &d.Role, &d.CSRF, &created, &seen)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, store.ErrNotFound
	}
	d.Created, d.LastSeen = fromNS(created), fromNS(seen)
	return d, err
}

// TouchDashboardSession implements store.DashboardSessions.
func (s *Store) TouchDashboardSession(ctx context.Context, key string, at time.Time) error {
	if err := checkText("session key", key); err != nil {
		return store.ErrNotFound
	}
	var one int
	err := s.pool.QueryRow(ctx, `
WITH t AS (UPDATE dashboard_sessions SET last_seen_ns = GREATEST(last_seen_ns, $2) WHERE key = $1 RETURNING 1)
SELECT COUNT(*) FROM t`, key, ns(at)).Scan(&one)
	if err != nil {
		return err
	}
	if one == 0 {
		return store.ErrNotFound
	}
	return nil
}

// DeleteDashboardSession implements store.DashboardSessions.
func (s *Store) DeleteDashboardSession(ctx context.Context, key string) error {
	if err := checkText("session key", key); err != nil {
		return store.ErrNotFound
	}
	return affected(s.pool.Exec(ctx, `DELETE FROM dashboard_sessions WHERE key = $1`, key))
}

// DeleteIdleDashboardSessions implements store.DashboardSessions.
func (s *Store) DeleteIdleDashboardSessions(ctx context.Context, scope string, seenBefore, createdBefore time.Time) (int, error) {
	if err := checkText("session scope", scope); err != nil {
		return 0, err
	}
	return s.deleteCount(ctx, `DELETE FROM dashboard_sessions WHERE scope = $1 AND (last_seen_ns < $2 OR created_ns < $3)`, scope, ns(seenBefore), ns(createdBefore))
}

// DeleteDashboardSessionsOutside implements store.DashboardSessions.
func (s *Store) DeleteDashboardSessionsOutside(ctx context.Context, scope string) (int, error) {
	if err := checkText("session scope", scope); err != nil {
		return 0, err
	}
	return s.deleteCount(ctx, `DELETE FROM dashboard_sessions WHERE scope <> $1`, scope)
}

// DeleteExpiredDashboardLogins implements store.DashboardSessions.
func (s *Store) DeleteExpiredDashboardLogins(ctx context.Context, createdBefore time.Time) (int, error) {
	return s.deleteCount(ctx, `DELETE FROM dashboard_logins WHERE created_ns < $1`, ns(createdBefore))
}

func (s *Store) deleteCount(ctx context.Context, q string, args ...any) (int, error) {
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// AddDashboardLogin implements store.DashboardSessions in one transaction.
// The bounds are checked by counting: two gateways adding at the same
// moment may each see room for one more, so a peer can get a sign-in or
// two past maxPerPeer, never an unbounded number.
func (s *Store) AddDashboardLogin(ctx context.Context, l store.DashboardLogin, expiredBefore time.Time, max, maxPerPeer int) (bool, error) {
	if err := checkText("sign-in key", l.Key, "sign-in verifier", l.Verifier, "sign-in nonce", l.Nonce, "sign-in return path", l.ReturnTo, "sign-in peer", l.Peer); err != nil {
		return false, fmt.Errorf("dashboard sign-in: %w", err)
	}
	added := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM dashboard_logins WHERE created_ns < $1`, ns(expiredBefore)); err != nil {
			return err
		}
		var fromPeer, all int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FILTER (WHERE peer = $1), COUNT(*) FROM dashboard_logins`, l.Peer).Scan(&fromPeer, &all); err != nil {
			return err
		}
		if maxPerPeer > 0 && fromPeer >= maxPerPeer {
			return nil
		}
		if max > 0 && all >= max {
			if _, err := tx.Exec(ctx, `
DELETE FROM dashboard_logins WHERE key IN (SELECT key FROM dashboard_logins ORDER BY created_ns, key COLLATE "C" LIMIT $1)`, all-max+1); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `
INSERT INTO dashboard_logins (key, verifier, nonce, return_to, peer, created_ns) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (key) DO UPDATE SET verifier = excluded.verifier, nonce = excluded.nonce, return_to = excluded.return_to,
	peer = excluded.peer, created_ns = excluded.created_ns`,
			l.Key, l.Verifier, l.Nonce, l.ReturnTo, l.Peer, ns(l.Created)); err != nil {
			return err
		}
		added = true
		return nil
	})
	return added, err
}

// TakeDashboardLogin implements store.DashboardSessions: the deletion
// decides, so of two gateways taking one sign-in exactly one gets it.
func (s *Store) TakeDashboardLogin(ctx context.Context, key string) (store.DashboardLogin, error) {
	l := store.DashboardLogin{Key: key}
	if err := checkText("sign-in key", key); err != nil {
		return l, store.ErrNotFound
	}
	var created int64
	err := s.pool.QueryRow(ctx, `DELETE FROM dashboard_logins WHERE key = $1 RETURNING verifier, nonce, return_to, peer, created_ns`, key).
		Scan(&l.Verifier, &l.Nonce, &l.ReturnTo, &l.Peer, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, store.ErrNotFound
	}
	l.Created = fromNS(created)
	return l, err
}
