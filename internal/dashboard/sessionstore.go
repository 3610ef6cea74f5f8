package dashboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// storeTimeout bounds each call to the session store: a store that does
// not answer fails the request instead of holding it.
const storeTimeout = 2 * time.Second

// sweepEvery is how often, at most, a dashboard removes the timed-out
// sessions from the store. It does so while creating or reading a
// session, so no goroutine is needed.
const sweepEvery = time.Minute

// storeSessions is the session table in a store that gateways share: a
// session started on one gateway is valid on all of them, and ends on all
// of them. Keys are scopedKey of the cookie value.
type storeSessions struct {
	st             store.DashboardSessions
	scope          string // Options.SessionScope
	idle, absolute time.Duration
	now            func() time.Time
	logger         *slog.Logger
	// nextSweep is when (Unix nanoseconds) the next sweep is due.
	nextSweep atomic.Int64
}

// scopedKey is the store's key of a cookie value or a state parameter:
// its SHA-256 (sessionKey), taken with the scope when there is one, so
// that a session made under another scope is not found.
func scopedKey(scope, id string) string {
	if scope == "" {
		return sessionKey(id)
	}
	return sessionKey(scope + "\x00" + id)
}

func storeCall(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, storeTimeout)
}

func (s *storeSessions) create(ctx context.Context, user, name string, role Role) (string, *Session, error) {
	id := randomToken(32)
	now := s.now()
	sess := &Session{User: user, Name: name, Role: role, CSRF: randomToken(32), Created: now, LastSeen: now}
	s.sweep(ctx, now)
	c, cancel := storeCall(ctx)
	defer cancel()
	err := s.st.PutDashboardSession(c, store.DashboardSession{
		Key: scopedKey(s.scope, id), User: user, Name: name, Role: int(role), CSRF: sess.CSRF, Created: now, LastSeen: now,
	}, maxSessions)
	if err != nil {
		return "", nil, fmt.Errorf("storing a dashboard session: %w", err)
	}
	return id, sess, nil
}

func (s *storeSessions) get(ctx context.Context, id string, touch bool) (*Session, error) {
	if id == "" {
		return nil, nil
	}
	key := scopedKey(s.scope, id)
	now := s.now()
	c, cancel := storeCall(ctx)
	d, err := s.st.GetDashboardSession(c, key)
	cancel()
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("reading a dashboard session: %w", err)
	}
	s.sweep(ctx, now)
	if err != nil {
		return nil, nil // unknown: never made, ended, or swept
	}
	sess := &Session{User: d.User, Name: d.Name, Role: Role(d.Role), CSRF: d.CSRF, Created: d.Created, LastSeen: d.LastSeen}
	if expired(sess, now, s.idle, s.absolute) {
		if err := s.delete(ctx, id); err != nil {
			s.logger.Warn("dashboard: removing a timed-out session failed", "error", err.Error())
		}
		return nil, nil
	}
	if !touch {
		return sess, nil
	}
	c, cancel = storeCall(ctx)
	defer cancel()
	switch err := s.st.TouchDashboardSession(c, key, now); {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil // ended meanwhile, by a sign-out on any gateway
	case err != nil:
		// The request goes on; the session may time out a little early.
		s.logger.Warn("dashboard: marking a session used failed", "error", err.Error())
	case now.After(sess.LastSeen):
		sess.LastSeen = now
	}
	return sess, nil
}

func (s *storeSessions) delete(ctx context.Context, id string) error {
	c, cancel := storeCall(ctx)
	defer cancel()
	if err := s.st.DeleteDashboardSession(c, scopedKey(s.scope, id)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("ending a dashboard session: %w", err)
	}
	return nil
}

// sweep removes the timed-out sessions, when sweepEvery has passed since
// the last time. A failure is logged; the next sweep tries again.
func (s *storeSessions) sweep(ctx context.Context, now time.Time) {
	due := s.nextSweep.Load()
	if now.UnixNano() < due || !s.nextSweep.CompareAndSwap(due, now.Add(sweepEvery).UnixNano()) {
		return
	}
	c, cancel := storeCall(ctx)
	defer cancel()
	if _, err := s.st.DeleteIdleDashboardSessions(c, now.Add(-s.idle), now.Add(-s.absolute)); err != nil {
		s.logger.Warn("dashboard: removing timed-out sessions failed", "error", err.Error())
	}
}

// storeLogins is the table of sign-ins in progress in a shared store, so
// that the provider may send the browser back to any gateway. Keys are
// scopedKey of the state parameter.
type storeLogins struct {
	st    store.DashboardSessions
	scope string
	now   func() time.Time
}

func (p *storeLogins) add(ctx context.Context, state string, l *pendingLogin) (bool, error) {
	c, cancel := storeCall(ctx)
	defer cancel()
	ok, err := p.st.AddDashboardLogin(c, store.DashboardLogin{
		Key: scopedKey(p.scope, state), Verifier: l.verifier, Nonce: l.nonce, ReturnTo: l.returnTo, Peer: l.peer, Created: l.created,
	}, p.now().Add(-loginTTL), maxPending, maxPendingPerPeer)
	if err != nil {
		return false, fmt.Errorf("storing a dashboard sign-in in progress: %w", err)
	}
	return ok, nil
}

func (p *storeLogins) take(ctx context.Context, state string) (*pendingLogin, error) {
	c, cancel := storeCall(ctx)
	defer cancel()
	d, err := p.st.TakeDashboardLogin(c, scopedKey(p.scope, state))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("taking a dashboard sign-in in progress: %w", err)
	}
	if p.now().Sub(d.Created) > loginTTL {
		return nil, nil
	}
	return &pendingLogin{verifier: d.Verifier, nonce: d.Nonce, returnTo: d.ReturnTo, created: d.Created, peer: d.Peer}, nil
}
