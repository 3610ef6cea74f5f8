package dashboard

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
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
		Key: scopedKey(s.scope, id), Scope: s.scope, User: user, Name: name, Role: int(role), CSRF: sess.CSRF, Created: now, LastSeen: now,
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
	if _, err := s.st.DeleteIdleDashboardSessions(c, s.scope, now.Add(-s.idle), now.Add(-s.absolute)); err != nil {
		s.logger.Warn("dashboard: removing timed-out sessions failed", "error", err.Error())
	}
	if _, err := s.st.DeleteExpiredDashboardLogins(c, now.Add(-loginTTL)); err != nil {
		s.logger.Warn("dashboard: removing sign-ins nobody finished failed", "error", err.Error())
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
	verifier, err := sealLogin(state, "verifier", l.verifier)
	if err != nil {
		return false, err
	}
	nonce, err := sealLogin(state, "nonce", l.nonce)
	if err != nil {
		return false, err
	}
	ok, err := p.st.AddDashboardLogin(c, store.DashboardLogin{
		Key: scopedKey(p.scope, state), Verifier: verifier, Nonce: nonce, ReturnTo: l.returnTo, Peer: l.peer, Created: l.created,
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
	verifier, err1 := openLogin(state, "verifier", d.Verifier)
	nonce, err2 := openLogin(state, "nonce", d.Nonce)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("reading a dashboard sign-in in progress: %w", err)
	}
	return &pendingLogin{verifier: verifier, nonce: nonce, returnTo: d.ReturnTo, created: d.Created, peer: d.Peer}, nil
}

// A sign-in's PKCE verifier and nonce are kept in the store sealed
// (AES-256-GCM) with a key derived from its state, which only the
// browser and the provider's redirect carry; the store holds the state's
// hash alone. So the rows of sign-ins under way give no usable verifier to
// whoever reads the database, even with an authorization code in hand.

// loginKey derives the sealing key of one field of the sign-in of state.
func loginKey(state, field string) []byte {
	sum := sha256.Sum256([]byte("gatehouse dashboard sign-in\x00" + field + "\x00" + state))
	return sum[:]
}

func loginAEAD(state, field string) (cipher.AEAD, error) {
	block, err := aes.NewCipher(loginKey(state, field))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealLogin returns value sealed for the store, as base64 text.
func sealLogin(state, field, value string) (string, error) {
	aead, err := loginAEAD(state, field)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce) // never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(value), nil)), nil
}

// openLogin returns the value sealLogin sealed. The error never repeats
// the value or the state.
func openLogin(state, field, sealed string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil {
		return "", fmt.Errorf("the sealed %s is not base64", field)
	}
	aead, err := loginAEAD(state, field)
	if err != nil {
		return "", err
	}
	if len(b) < aead.NonceSize() {
		return "", fmt.Errorf("the sealed %s is too short", field)
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], nil)
	if err != nil {
		return "", fmt.Errorf("the sealed %s does not open", field)
	}
	return string(plain), nil
}
