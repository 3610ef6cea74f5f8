package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"sync"
	"time"
)

// Role is what a person may do in the dashboard.
type Role int

// The roles, weakest first.
const (
	RoleNone   Role = iota
	RoleViewer      // sees every page, changes nothing
	RoleAdmin       // also creates, rotates and revokes keys
)

// String returns "admin", "viewer" or "none".
func (r Role) String() string {
	switch r {
	case RoleAdmin:
		return "admin"
	case RoleViewer:
		return "viewer"
	}
	return "none"
}

// Session is a signed-in person.
type Session struct {
	// User names the person in the audit log (email, else subject).
	User string
	// Name is shown in the page header.
	Name string
	Role Role
	// CSRF is the synchronizer token every form of the session carries.
	CSRF     string
	Created  time.Time
	LastSeen time.Time
}

// CheckCSRF compares a submitted token with the session's in constant time.
func (s *Session) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) == 1
}

// maxSessions bounds the session table; past it the least recently used
// session is dropped.
const maxSessions = 10000

// sessionTable keeps the signed-in people: in memory, for one gateway
// (sessions), or in a store the gateways share (storeSessions). An error
// means the table could not be read or written; it never carries a
// cookie value or a CSRF token.
type sessionTable interface {
	// create starts a session and returns the cookie value.
	create(ctx context.Context, user, name string, role Role) (string, *Session, error)
	// get returns a copy of the live session of a cookie value, or nil
	// when it is unknown or timed out. With touch, it marks it used.
	get(ctx context.Context, id string, touch bool) (*Session, error)
	// delete ends a session; one already gone is not an error.
	delete(ctx context.Context, id string) error
}

// loginTable keeps the sign-ins in progress: in memory (pendingLogins)
// or in a shared store (storeLogins), keyed by their state parameter.
type loginTable interface {
	// add records a sign-in; false when its peer has too many under way.
	add(ctx context.Context, state string, l *pendingLogin) (bool, error)
	// take removes and returns the sign-in of state, or nil when it is
	// unknown, already taken or too old.
	take(ctx context.Context, state string) (*pendingLogin, error)
}

// expired reports whether a session has timed out at now: idle since its
// last use, or older than absolute.
func expired(sess *Session, now time.Time, idle, absolute time.Duration) bool {
	return now.Sub(sess.LastSeen) >= idle || now.Sub(sess.Created) >= absolute
}

// sessions is the server-side session table. The cookie holds a random
// ID; the table is keyed by the ID's SHA-256, so that even a dump of the
// table gives no usable cookie.
type sessions struct {
	idle, absolute time.Duration
	now            func() time.Time

	mu sync.Mutex
	m  map[string]*Session
}

func newSessions(idle, absolute time.Duration, now func() time.Time) *sessions {
	return &sessions{idle: idle, absolute: absolute, now: now, m: map[string]*Session{}}
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// create starts a session and returns the cookie value.
func (s *sessions) create(_ context.Context, user, name string, role Role) (string, *Session, error) {
	id := randomToken(32)
	now := s.now()
	sess := &Session{User: user, Name: name, Role: role, CSRF: randomToken(32), Created: now, LastSeen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	if len(s.m) >= maxSessions {
		var oldestKey string
		var oldest time.Time
		for k, v := range s.m {
			if oldestKey == "" || v.LastSeen.Before(oldest) {
				oldestKey, oldest = k, v.LastSeen
			}
		}
		delete(s.m, oldestKey)
	}
	s.m[sessionKey(id)] = sess
	c := *sess
	return id, &c, nil
}

// get returns the live session of a cookie value, or nil when it is
// unknown or timed out. With touch, it marks it used: a person's request,
// not a page's own polling (an Overview left open on an unattended
// screen must not keep its session past the idle timeout).
func (s *sessions) get(_ context.Context, id string, touch bool) (*Session, error) {
	if id == "" {
		return nil, nil
	}
	k := sessionKey(id)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.m[k]
	if sess == nil {
		return nil, nil
	}
	if s.expired(sess, now) {
		delete(s.m, k)
		return nil, nil
	}
	if touch {
		sess.LastSeen = now
	}
	c := *sess
	return &c, nil
}

func (s *sessions) expired(sess *Session, now time.Time) bool {
	return expired(sess, now, s.idle, s.absolute)
}

// delete ends a session.
func (s *sessions) delete(_ context.Context, id string) error {
	s.mu.Lock()
	delete(s.m, sessionKey(id))
	s.mu.Unlock()
	return nil
}

// sweep drops timed-out sessions; the caller holds mu.
func (s *sessions) sweep(now time.Time) {
	for k, v := range s.m {
		if s.expired(v, now) {
			delete(s.m, k)
		}
	}
}

// pendingLogin is an authorization request on its way to the identity
// provider and back.
type pendingLogin struct {
	verifier string // PKCE code_verifier
	nonce    string
	returnTo string
	created  time.Time
	peer     string // the client's address, without its port
}

// loginTTL is how long a person may take at the identity provider.
const loginTTL = 10 * time.Minute

// maxPending bounds outstanding logins; maxPendingPerPeer those started
// from one address, so that one client cannot fill the table.
const (
	maxPending        = 1000
	maxPendingPerPeer = 20
)

type pendingLogins struct {
	now func() time.Time

	mu sync.Mutex
	m  map[string]*pendingLogin // by state
}

// add records a login. It refuses one more from a peer that has
// maxPendingPerPeer in progress; when the table is full, the oldest login
// makes room (a flood from many addresses delays sign-ins, but cannot
// stop them for the ten minutes a login lasts).
func (p *pendingLogins) add(_ context.Context, state string, l *pendingLogin) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	fromPeer := 0
	oldest := ""
	for k, v := range p.m {
		if now.Sub(v.created) > loginTTL {
			delete(p.m, k)
			continue
		}
		if v.peer == l.peer {
			fromPeer++
		}
		if oldest == "" || v.created.Before(p.m[oldest].created) {
			oldest = k
		}
	}
	if fromPeer >= maxPendingPerPeer {
		return false, nil
	}
	if len(p.m) >= maxPending {
		delete(p.m, oldest)
	}
	p.m[state] = l
	return true, nil
}

// take removes and returns the login of state, if it is still valid.
func (p *pendingLogins) take(_ context.Context, state string) (*pendingLogin, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.m[state]
	delete(p.m, state)
	if l == nil || p.now().Sub(l.created) > loginTTL {
		return nil, nil
	}
	return l, nil
}
