package dashboard

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/store/sqlite"
)

// The tests of this file run two dashboards, A and B, as two gateways
// would: each over its own handle of one store (two handles of one
// SQLite file stand in for PostgreSQL), behind one address that sends
// each request to whichever the test chooses.

// flakyStore is a handle of the session store that fails on demand and
// counts the sweeps.
type flakyStore struct {
	store.DashboardSessions
	mu      sync.Mutex
	failing map[string]bool // by method ("Put", "Get"...), or "*" for all
	sweeps  atomic.Int32
}

var errStoreDown = errors.New("dial tcp 10.0.0.5:5432: connect: connection refused")

// fail makes the named methods fail (none: all work again).
func (f *flakyStore) fail(methods ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = map[string]bool{}
	for _, m := range methods {
		f.failing[m] = true
	}
}

func (f *flakyStore) err(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing["*"] || f.failing[method] {
		return errStoreDown
	}
	return nil
}

func (f *flakyStore) PutDashboardSession(ctx context.Context, s store.DashboardSession, max int) error {
	if err := f.err("Put"); err != nil {
		return err
	}
	return f.DashboardSessions.PutDashboardSession(ctx, s, max)
}

func (f *flakyStore) GetDashboardSession(ctx context.Context, key string) (store.DashboardSession, error) {
	if err := f.err("Get"); err != nil {
		return store.DashboardSession{}, err
	}
	return f.DashboardSessions.GetDashboardSession(ctx, key)
}

func (f *flakyStore) TouchDashboardSession(ctx context.Context, key string, at time.Time) error {
	if err := f.err("Touch"); err != nil {
		return err
	}
	return f.DashboardSessions.TouchDashboardSession(ctx, key, at)
}

func (f *flakyStore) DeleteDashboardSession(ctx context.Context, key string) error {
	if err := f.err("Delete"); err != nil {
		return err
	}
	return f.DashboardSessions.DeleteDashboardSession(ctx, key)
}

func (f *flakyStore) DeleteIdleDashboardSessions(ctx context.Context, scope string, seenBefore, createdBefore time.Time) (int, error) {
	f.sweeps.Add(1)
	if err := f.err("DeleteIdle"); err != nil {
		return 0, err
	}
	return f.DashboardSessions.DeleteIdleDashboardSessions(ctx, scope, seenBefore, createdBefore)
}

func (f *flakyStore) AddDashboardLogin(ctx context.Context, l store.DashboardLogin, expiredBefore time.Time, max, maxPerPeer int) (bool, error) {
	if err := f.err("Add"); err != nil {
		return false, err
	}
	return f.DashboardSessions.AddDashboardLogin(ctx, l, expiredBefore, max, maxPerPeer)
}

func (f *flakyStore) TakeDashboardLogin(ctx context.Context, key string) (store.DashboardLogin, error) {
	if err := f.err("Take"); err != nil {
		return store.DashboardLogin{}, err
	}
	return f.DashboardSessions.TakeDashboardLogin(ctx, key)
}

type sharedEnv struct {
	*testEnv
	a, b   *Dashboard
	fa, fb *flakyStore   // A's and B's handles
	st     *sqlite.Store // a third handle, to look into the store
	dir    string
}

func newSharedEnv(t *testing.T, mutate func(*Options)) *sharedEnv {
	t.Helper()
	dir := t.TempDir()
	open := func() *sqlite.Store {
		st, err := sqlite.Open(context.Background(), dir, sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	fa, fb := &flakyStore{DashboardSessions: open()}, &flakyStore{DashboardSessions: open()}
	e := newTestEnv(t, func(o *Options) {
		if mutate != nil {
			mutate(o)
		}
		o.Sessions = fa
	})
	o := e.dash.o // the same settings and provider: one redirect URL, as behind a load balancer
	o.Sessions = fb
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return &sharedEnv{testEnv: e, a: e.dash, b: b, fa: fa, fb: fb, st: open(), dir: dir}
}

// via sends the next requests to d.
func (e *sharedEnv) via(d *Dashboard) { e.serving.Store(d) }

// storeHolds reports whether any file of the store holds s.
func (e *sharedEnv) storeHolds(s string) bool {
	e.t.Helper()
	files, err := os.ReadDir(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range files {
		if f.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(e.dir, f.Name()))
		if err != nil {
			e.t.Fatal(err)
		}
		if strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

// cookie returns the value of the browser's cookie name, or "".
func (b *browser) cookie(name, path string) string {
	u, _ := url.Parse(b.env.srv.URL + path)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// putCookie puts a cookie back into the browser, as one who copied it would.
func (b *browser) putCookie(name, path, value string) {
	u, _ := url.Parse(b.env.srv.URL + path)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: path}})
}

func TestSharedSessions_SessionMadeOnOneGatewayIsValidOnAnother(t *testing.T) {
	t.Run("oidc", func(t *testing.T) {
		e := newSharedEnv(t, nil)
		br := e.browser()
		e.via(e.a)
		if p := br.signIn("alice"); p.status != http.StatusFound || p.location != "/ui/apis" {
			t.Fatalf("sign-in through A: %d to %q: %s", p.status, p.location, p.body)
		}
		e.via(e.b)
		p := br.get("/ui/apis")
		if p.status != http.StatusOK || !strings.Contains(p.body, `<span class="badge">admin</span>`) {
			t.Fatalf("B: %d, the admin session made through A is not valid", p.status)
		}
		// One session, one CSRF token: a change through A with the token
		// of B's page.
		token := csrfOf(t, p.body)
		e.via(e.a)
		p = br.do("POST", "/ui/consumers/mobile-app/rotate", url.Values{"slot": {"secondary"}, "csrf": {token}}, map[string]string{"Origin": e.srv.URL})
		if p.status != http.StatusOK {
			t.Fatalf("a change through A with the token of B's page: %d", p.status)
		}
	})
	t.Run("insecure_local", func(t *testing.T) {
		e := newSharedEnv(t, func(o *Options) { o.OIDC, o.InsecureLocal = nil, true })
		br := e.browser()
		e.via(e.a)
		if p := br.get("/ui/"); p.status != http.StatusOK || br.cookie(sessionCookie, "/ui/") == "" {
			t.Fatalf("A: %d, no session made", p.status)
		}
		e.via(e.b)
		if p := br.get("/ui/"); p.status != http.StatusOK || p.header.Get("Set-Cookie") != "" {
			t.Fatalf("B: %d, Set-Cookie %q: it did not take the session A made", p.status, p.header.Get("Set-Cookie"))
		}
	})
}

func TestSharedSessions_SignOutOnOneGatewayEndsTheSessionOnAll(t *testing.T) {
	e := newSharedEnv(t, nil)
	br := e.browser()
	e.via(e.a)
	br.signIn("alice")
	id := br.cookie(sessionCookie, "/ui/")
	e.via(e.b)
	token := csrfOf(t, br.get("/ui/").body)
	e.via(e.a)
	if p := br.do("POST", "/ui/logout", url.Values{"csrf": {token}}, map[string]string{"Origin": e.srv.URL}); p.status != http.StatusSeeOther {
		t.Fatalf("sign-out through A: %d", p.status)
	}
	// With the cookie put back, as one who copied it would.
	br.putCookie(sessionCookie, "/ui/", id)
	for name, d := range map[string]*Dashboard{"A": e.a, "B": e.b} {
		e.via(d)
		if p := br.get("/ui/"); p.status != http.StatusFound {
			t.Errorf("%s after the sign-out: %d, want a redirect to sign in", name, p.status)
		}
	}
}

func TestSharedSessions_SignInStartedOnOneGatewayEndsOnAnotherOnce(t *testing.T) {
	e := newSharedEnv(t, nil)
	br := e.browser()
	e.via(e.a)
	cb, state := br.startSignIn("alice")
	e.via(e.b)
	if p := br.get(cb); p.status != http.StatusFound || p.location != "/ui/apis" {
		t.Fatalf("callback on B of a sign-in started on A: %d to %q: %s", p.status, p.location, p.body)
	}
	e.via(e.a)
	if p := br.get("/ui/apis"); p.status != http.StatusOK {
		t.Fatalf("A after the sign-in ended on B: %d", p.status)
	}
	for name, d := range map[string]*Dashboard{"A": e.a, "B": e.b} {
		br.putCookie(loginCookie, "/ui/callback", state)
		e.via(d)
		if p := br.get(cb); p.status != http.StatusBadRequest || !strings.Contains(p.body, "already used") {
			t.Errorf("replayed callback on %s: %d, want 400", name, p.status)
		}
	}
}

// The store holds the SHA-256 of the session cookie and of the state, not
// the values: a copy of it signs nobody in.
func TestSharedSessions_StoreHoldsNeitherCookieNorState(t *testing.T) {
	e := newSharedEnv(t, nil)
	br := e.browser()
	cb, state := br.startSignIn("alice")
	if e.storeHolds(state) {
		t.Error("the store holds the state of a sign-in in progress")
	}
	br.get(cb)
	id := br.cookie(sessionCookie, "/ui/")
	if id == "" {
		t.Fatal("not signed in")
	}
	if e.storeHolds(id) {
		t.Error("the store holds the session cookie's value")
	}
	s, err := e.st.GetDashboardSession(t.Context(), sessionKey(id))
	if err != nil || s.User != "alice@example.com" || s.Role != int(RoleAdmin) {
		t.Fatalf("the session under the cookie's SHA-256: %+v, %v", s, err)
	}
	if _, err := e.st.GetDashboardSession(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a session under the cookie's value: %v", err)
	}
}

// The idle timeout counts from a person's last request to any gateway;
// polling on any gateway does not count. The absolute one holds too.
func TestSharedSessions_TimeoutsHoldAcrossGateways(t *testing.T) {
	e := newSharedEnv(t, func(o *Options) { o.IdleTimeout, o.AbsoluteTimeout = 10*time.Minute, time.Hour })
	br := e.browser()
	e.via(e.a)
	br.signIn("alice")
	for i, d := range []*Dashboard{e.b, e.a, e.b} { // 27 minutes, used every 9
		e.clk.Advance(9 * time.Minute)
		e.via(d)
		if p := br.get("/ui/"); p.status != http.StatusOK {
			t.Fatalf("request %d, 9 min after the last one on the other gateway: %d", i+1, p.status)
		}
	}
	e.clk.Advance(6 * time.Minute)
	if p := br.get("/ui/data/stats"); p.status != http.StatusOK {
		t.Fatalf("polling: %d", p.status)
	}
	e.clk.Advance(5 * time.Minute) // 11 min after the last person's request
	for name, d := range map[string]*Dashboard{"A": e.a, "B": e.b} {
		e.via(d)
		if p := br.get("/ui/"); p.status != http.StatusFound {
			t.Errorf("%s: the session outlived the idle timeout through polling: %d", name, p.status)
		}
	}

	br.signIn("alice")
	start := e.clk.Now()
	for i := 0; e.clk.Now().Sub(start) < time.Hour; i++ {
		e.clk.Advance(9 * time.Minute)
		e.via([]*Dashboard{e.a, e.b}[i%2])
		p := br.get("/ui/")
		if past := e.clk.Now().Sub(start) >= time.Hour; (p.status == http.StatusOK) == past {
			t.Fatalf("%v after the sign-in: %d", e.clk.Now().Sub(start), p.status)
		}
	}
}

// Timed-out sessions leave the store though nobody asks for them again,
// swept at most once a minute by each gateway.
func TestSharedSessions_TimedOutSessionsAreSwept(t *testing.T) {
	e := newSharedEnv(t, func(o *Options) { o.IdleTimeout = 10 * time.Minute })
	gone, stays := e.browser(), e.browser()
	e.via(e.a)
	gone.signIn("alice")
	key := sessionKey(gone.cookie(sessionCookie, "/ui/"))
	e.clk.Advance(11 * time.Minute)
	e.via(e.b)
	stays.signIn("bob")
	if _, err := e.st.GetDashboardSession(t.Context(), key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a session idle past its timeout is still stored: %v", err)
	}
	n := e.fb.sweeps.Load()
	for range 5 {
		e.clk.Advance(10 * time.Second)
		stays.get("/ui/")
	}
	if got := e.fb.sweeps.Load(); got != n {
		t.Errorf("%d more sweeps within a minute of the last, want 0", got-n)
	}
	e.clk.Advance(15 * time.Second)
	stays.get("/ui/")
	if got := e.fb.sweeps.Load(); got != n+1 {
		t.Errorf("%d more sweeps a minute after the last, want 1", got-n)
	}
}

// A store that fails keeps everyone out, without sending them to sign in
// (which would fail the same way, in a loop), and the log says why
// without a cookie, token or state.
func TestSharedSessions_FailingStoreGives503(t *testing.T) {
	e := newSharedEnv(t, nil)
	e.via(e.a)
	br := e.browser()
	br.signIn("alice")
	id := br.cookie(sessionCookie, "/ui/")
	token := csrfOf(t, br.get("/ui/").body)
	secrets := []string{id, token}

	e.fa.fail("*")
	for _, path := range []string{"/ui/", "/ui/apis", "/ui/login", "/ui/data/stats"} {
		p := br.get(path)
		if p.status != http.StatusServiceUnavailable || p.location != "" || strings.Contains(p.body, `class="badge"`) ||
			!strings.Contains(p.body, "session store is unavailable") {
			t.Errorf("%s with the store down: %d to %q", path, p.status, p.location)
		}
	}
	p := br.do("POST", "/ui/consumers/mobile-app/rotate", url.Values{"slot": {"secondary"}, "csrf": {token}}, map[string]string{"Origin": e.srv.URL})
	if p.status != http.StatusServiceUnavailable {
		t.Errorf("a change with the store down: %d", p.status)
	}
	if p := e.browser().get("/ui/login/start"); p.status != http.StatusServiceUnavailable {
		t.Errorf("a sign-in started with the store down: %d to %q", p.status, p.location)
	}
	e.fa.fail()
	if p := br.get("/ui/"); p.status != http.StatusOK {
		t.Fatalf("the store is back, the session is not: %d", p.status)
	}

	t.Run("touch", func(t *testing.T) {
		e.fa.fail("Touch")
		defer e.fa.fail()
		if p := br.get("/ui/"); p.status != http.StatusOK {
			t.Errorf("a failed touch refused the request: %d", p.status)
		}
	})
	t.Run("sign-out", func(t *testing.T) {
		e.fa.fail("Delete")
		p := br.do("POST", "/ui/logout", url.Values{"csrf": {token}}, map[string]string{"Origin": e.srv.URL})
		e.fa.fail()
		if p.status != http.StatusServiceUnavailable {
			t.Fatalf("a sign-out the store did not record: %d", p.status)
		}
		if p := br.get("/ui/"); p.status != http.StatusOK {
			t.Errorf("after a failed sign-out, the session or its cookie is gone: %d", p.status)
		}
	})
	for _, method := range []string{"Take", "Put"} {
		t.Run("callback "+method, func(t *testing.T) {
			other := e.browser()
			cb, state := other.startSignIn("bob")
			secrets = append(secrets, state)
			e.fa.fail(method)
			p := other.get(cb)
			e.fa.fail()
			if p.status != http.StatusServiceUnavailable || other.cookie(sessionCookie, "/ui/") != "" {
				t.Fatalf("callback with %s failing: %d to %q", method, p.status, p.location)
			}
			if p := other.get("/ui/"); p.status != http.StatusFound {
				t.Errorf("signed in after a failed callback: %d", p.status)
			}
		})
	}

	logs := e.logs.String()
	for _, want := range []string{"connection refused", "marking a session used failed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds a secret %q:\n%s", s, logs)
		}
	}
}

// Sessions are confined to their scope: when the dashboard's settings
// change (the server gives a digest of them as the scope), a session made
// under the old settings is unknown to a dashboard built with the new
// ones, on every gateway, as a rebuilt dashboard forgets the sessions it
// kept in memory. So a role taken away in the settings is gone at once.
func TestSharedSessions_ScopeChangeEndsSessions(t *testing.T) {
	e := newSharedEnv(t, func(o *Options) { o.SessionScope = "settings-1" })
	br := e.browser()
	e.via(e.a)
	if p := br.signIn("alice"); p.status != http.StatusFound {
		t.Fatalf("sign-in: %d", p.status)
	}
	e.via(e.b)
	if p := br.get("/ui/apis"); p.status != http.StatusOK {
		t.Fatalf("B, same scope: %d", p.status)
	}
	o := e.b.o
	o.SessionScope = "settings-2"
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e.via(c)
	if p := br.get("/ui/apis"); p.status != http.StatusFound {
		t.Fatalf("a dashboard with other settings: %d, want a redirect to sign in", p.status)
	}
	// Back to the first settings (a rollback): the session ended with
	// the change, and does not come back.
	e.via(e.b)
	if p := br.get("/ui/apis"); p.status != http.StatusFound {
		t.Fatalf("back under the first settings: %d, want a redirect to sign in (the session ended with the change)", p.status)
	}
}

// A sign-in's PKCE verifier and nonce are in the store sealed with a key
// derived from its state, which the store does not hold: whoever reads the
// database gets neither, and only the state opens them.
func TestSharedSessions_SignInSecretsAreSealed(t *testing.T) {
	e := newSharedEnv(t, nil)
	br := e.browser()
	e.via(e.a)
	p := br.get("/ui/login/start?return=/ui/apis")
	auth, err := url.Parse(p.location)
	if p.status != http.StatusFound || err != nil {
		t.Fatalf("login start: %d %v", p.status, err)
	}
	q := auth.Query()
	nonce, state, challenge := q.Get("nonce"), q.Get("state"), q.Get("code_challenge")
	if e.storeHolds(nonce) {
		t.Error("the store holds the sign-in's nonce")
	}
	l, err := e.st.TakeDashboardLogin(t.Context(), sessionKey(state))
	if err != nil {
		t.Fatal(err)
	}
	s256 := func(v string) string {
		sum := sha256.Sum256([]byte(v))
		return base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if s256(l.Verifier) == challenge || l.Nonce == nonce {
		t.Fatal("the store holds the verifier or the nonce as they are")
	}
	v, err := openLogin(state, "verifier", l.Verifier)
	if err != nil || s256(v) != challenge {
		t.Fatalf("the sealed verifier, opened with the state: %v (matches the challenge: %v)", err, s256(v) == challenge)
	}
	if n, err := openLogin(state, "nonce", l.Nonce); err != nil || n != nonce {
		t.Fatalf("the sealed nonce, opened with the state: %v", err)
	}
	if _, err := openLogin(state+"x", "verifier", l.Verifier); err == nil || strings.Contains(err.Error(), state) {
		t.Fatalf("another state opened the verifier, or the error names the state: %v", err)
	}
}
