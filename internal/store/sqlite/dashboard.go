package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// PutDashboardSession implements store.DashboardSessions.
func (s *Store) PutDashboardSession(ctx context.Context, d store.DashboardSession, max int) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `
INSERT INTO dashboard_sessions (key, scope, user_, name, role, csrf, created_ns, last_seen_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET scope = excluded.scope, user_ = excluded.user_, name = excluded.name, role = excluded.role,
	csrf = excluded.csrf, created_ns = excluded.created_ns, last_seen_ns = excluded.last_seen_ns`,
		d.Key, d.Scope, d.User, d.Name, d.Role, d.CSRF, ns(d.Created), ns(d.LastSeen)); err != nil {
		return err
	}
	if max > 0 {
		if _, err := tx.ExecContext(ctx, `
DELETE FROM dashboard_sessions WHERE key IN (
	SELECT key FROM dashboard_sessions ORDER BY last_seen_ns, key
	LIMIT MAX(0, (SELECT COUNT(*) FROM dashboard_sessions) - ?))`, max); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// GetDashboardSession implements store.DashboardSessions.
func (s *Store) GetDashboardSession(ctx context.Context, key string) (store.DashboardSession, error) {
	d := store.DashboardSession{Key: key}
	var created, seen int64
	err := s.reader.QueryRowContext(ctx, `SELECT scope, user_, name, role, csrf, created_ns, last_seen_ns FROM dashboard_sessions WHERE key = ?`, key).
		Scan(&d.Scope, &d.User, &d.Name, &d.Role, &d.CSRF, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return d, store.ErrNotFound
	}
	d.Created, d.LastSeen = fromNS(created), fromNS(seen)
	return d, err
}

// TouchDashboardSession implements store.DashboardSessions.
func (s *Store) TouchDashboardSession(ctx context.Context, key string, at time.Time) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var seen int64
	err = tx.QueryRowContext(ctx, `SELECT last_seen_ns FROM dashboard_sessions WHERE key = ?`, key).Scan(&seen)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	if err != nil {
		return err
	}
	if ns(at) > seen {
		if _, err := tx.ExecContext(ctx, `UPDATE dashboard_sessions SET last_seen_ns = ? WHERE key = ?`, ns(at), key); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// DeleteDashboardSession implements store.DashboardSessions.
func (s *Store) DeleteDashboardSession(ctx context.Context, key string) error {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM dashboard_sessions WHERE key = ?`, key)
	return affected(res, err)
}

// DeleteIdleDashboardSessions implements store.DashboardSessions.
func (s *Store) DeleteIdleDashboardSessions(ctx context.Context, scope string, seenBefore, createdBefore time.Time) (int, error) {
	return s.deleteCount(ctx, `DELETE FROM dashboard_sessions WHERE scope = ? AND (last_seen_ns < ? OR created_ns < ?)`, scope, ns(seenBefore), ns(createdBefore))
}

// DeleteDashboardSessionsOutside implements store.DashboardSessions.
func (s *Store) DeleteDashboardSessionsOutside(ctx context.Context, scope string) (int, error) {
	return s.deleteCount(ctx, `DELETE FROM dashboard_sessions WHERE scope <> ?`, scope)
}

// DeleteExpiredDashboardLogins implements store.DashboardSessions.
func (s *Store) DeleteExpiredDashboardLogins(ctx context.Context, createdBefore time.Time) (int, error) {
	return s.deleteCount(ctx, `DELETE FROM dashboard_logins WHERE created_ns < ?`, ns(createdBefore))
}

func (s *Store) deleteCount(ctx context.Context, q string, args ...any) (int, error) {
	res, err := s.writer.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// AddDashboardLogin implements store.DashboardSessions in one transaction.
func (s *Store) AddDashboardLogin(ctx context.Context, l store.DashboardLogin, expiredBefore time.Time, max, maxPerPeer int) (bool, error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM dashboard_logins WHERE created_ns < ?`, ns(expiredBefore)); err != nil {
		return false, err
	}
	var fromPeer, all int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE peer = ?), COUNT(*) FROM dashboard_logins`, l.Peer).Scan(&fromPeer, &all); err != nil {
		return false, err
	}
	if maxPerPeer > 0 && fromPeer >= maxPerPeer {
		return false, tx.Commit() // keep the sweep
	}
	if max > 0 && all >= max {
		if _, err := tx.ExecContext(ctx, `
DELETE FROM dashboard_logins WHERE key IN (SELECT key FROM dashboard_logins ORDER BY created_ns, key LIMIT ?)`, all-max+1); err != nil {
			return false, err
		}
	}
	if _, err := tx.ExecContext(ctx, `
INSERT INTO dashboard_logins (key, verifier, nonce, return_to, peer, created_ns) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET verifier = excluded.verifier, nonce = excluded.nonce, return_to = excluded.return_to,
	peer = excluded.peer, created_ns = excluded.created_ns`,
		l.Key, l.Verifier, l.Nonce, l.ReturnTo, l.Peer, ns(l.Created)); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// TakeDashboardLogin implements store.DashboardSessions.
func (s *Store) TakeDashboardLogin(ctx context.Context, key string) (store.DashboardLogin, error) {
	l := store.DashboardLogin{Key: key}
	var created int64
	err := s.writer.QueryRowContext(ctx, `DELETE FROM dashboard_logins WHERE key = ? RETURNING verifier, nonce, return_to, peer, created_ns`, key).
		Scan(&l.Verifier, &l.Nonce, &l.ReturnTo, &l.Peer, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return l, store.ErrNotFound
	}
	l.Created = fromNS(created)
	return l, err
}
