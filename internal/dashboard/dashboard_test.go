package dashboard

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDashboard_PagesRequireSignIn(t *testing.T) {
	e := newTestEnv(t, nil)
	b := e.browser()
	for _, path := range []string{"/ui/", "/ui/apis", "/ui/backends", "/ui/consumers", "/ui/audit", "/ui/anomalies", "/ui/suggestions", "/ui/config", "/ui/config/diff?from=v1&to=v2"} {
		p := b.get(path)
		if p.status != http.StatusFound || !strings.HasPrefix(p.location, "/ui/login?return=") {
			t.Errorf("%s: %d to %q, want a redirect to sign in", path, p.status, p.location)
		}
	}
	if p := b.get("/ui/data/stats"); p.status != http.StatusUnauthorized {
		t.Errorf("stats JSON without a session: %d", p.status)
	}
}

func TestDashboard_SignInWithPKCEGivesRoleFromClaims(t *testing.T) {
	e := newTestEnv(t, nil)
	cases := []struct {
		user, role string
	}{{"alice", "admin"}, {"bob", "viewer"}}
	for _, c := range cases {
		t.Run(c.user, func(t *testing.T) {
			b := e.browser()
			p := b.signIn(c.user)
			if p.status != http.StatusFound || p.location != "/ui/apis" {
				t.Fatalf("callback: %d to %q: %s", p.status, p.location, p.body)
			}
			var sc *http.Cookie
			for _, ck := range (&http.Response{Header: p.header}).Cookies() {
				if ck.Name == sessionCookie {
					sc = ck
				}
			}
			if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Secure {
				t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax, not Secure on loopback http", sc)
			}
			p = b.get("/ui/apis")
			if p.status != 200 || !strings.Contains(p.body, `<span class="badge">`+c.role+`</span>`) {
				t.Fatalf("apis page: %d, role %s not shown", p.status, c.role)
			}
		})
	}
	entries, _ := e.audit.Search(t.Context(), AuditQuery{Action: "login"})
	if len(entries) != 2 || entries[0].Actor != "bob@example.com" {
		t.Errorf("sign-ins not audited: %+v", entries)
	}
}

// A confidential client's secret is asked for at each token exchange, so a
// new one (a reload) takes effect at the next sign-in without a restart.
func TestDashboard_ConfidentialClientSecretReadAtEachSignIn(t *testing.T) {
	var secret atomic.Value
	secret.Store("not-the-secret")
	e := newTestEnv(t, func(o *Options) {
		o.OIDC.ClientID = "dash-confidential"
		o.OIDC.ClientSecret = func() string { return secret.Load().(string) }
	})
	if p := e.browser().signIn("alice"); p.status == http.StatusFound && p.location == "/ui/apis" {
		t.Fatal("signed in with a wrong client secret")
	}
	secret.Store("dash-secret-1")
	if p := e.browser().signIn("alice"); p.status != http.StatusFound || p.location != "/ui/apis" {
		t.Fatalf("with the client's secret: %d to %q: %s", p.status, p.location, p.body)
	}
	if strings.Contains(e.logs.String(), "dash-secret-1") || strings.Contains(e.logs.String(), "not-the-secret") {
		t.Errorf("a client secret is in the log:\n%s", e.logs.String())
	}
}

func TestDashboard_SignInWithoutRoleIsRefused(t *testing.T) {
	e := newTestEnv(t, nil)
	b := e.browser()
	p := b.signIn("carol")
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "no dashboard role") {
		t.Fatalf("carol: %d %s", p.status, p.body)
	}
	if p := b.get("/ui/"); p.status != http.StatusFound {
		t.Error("a person without a role got a session")
	}
	denied, _ := e.audit.Search(t.Context(), AuditQuery{Action: "login.denied"})
	if len(denied) != 1 || denied[0].Detail != "denied; no dashboard role" {
		t.Errorf("the refused sign-in is not audited as denied: %+v", denied)
	}
}

func TestDashboard_CallbackRefusesStateFromAnotherBrowser(t *testing.T) {
	e := newTestEnv(t, nil)
	victim, attacker := e.browser(), e.browser()
	// The attacker starts a sign-in and hands the victim the callback URL.
	p := attacker.get("/ui/login/start")
	auth, _ := url.Parse(p.location)
	q := auth.Query()
	q.Set("login_hint", "carol")
	auth.RawQuery = q.Encode()
	cb := attacker.get(auth.String()).location
	p = victim.get(cb)
	if p.status != http.StatusBadRequest {
		t.Fatalf("callback in another browser: %d, want 400", p.status)
	}
}

func TestDashboard_CallbackIsSingleUse(t *testing.T) {
	e := newTestEnv(t, nil)
	b := e.browser()
	cb, state := b.startSignIn("alice")
	if p := b.get(cb); p.status != http.StatusFound {
		t.Fatalf("first callback: %d", p.status)
	}
	// Replay with the login cookie put back.
	u, _ := url.Parse(e.srv.URL + "/ui/callback")
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: loginCookie, Value: state, Path: "/ui/callback"}})
	if p := b.get(cb); p.status != http.StatusBadRequest {
		t.Fatalf("replayed callback: %d, want 400", p.status)
	}
}

func TestDashboard_ChangesNeedCSRFTokenAndSameOrigin(t *testing.T) {
	e := newTestEnv(t, nil)
	b := e.browser()
	b.signIn("alice")
	token := csrfOf(t, b.get("/ui/consumers").body)
	origin := map[string]string{"Origin": e.srv.URL}
	cases := []struct {
		name   string
		form   url.Values
		hdr    map[string]string
		status int
	}{
		{"no token", url.Values{"slot": {"primary"}}, origin, http.StatusForbidden},
		{"wrong token", url.Values{"slot": {"primary"}, "csrf": {"x" + token}}, origin, http.StatusForbidden},
		{"foreign origin", url.Values{"slot": {"primary"}, "csrf": {token}}, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"cross-site fetch without origin", url.Values{"slot": {"primary"}, "csrf": {token}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same origin with token", url.Values{"slot": {"primary"}, "csrf": {token}}, origin, http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := b.do("POST", "/ui/consumers/mobile-app/rotate", c.form, c.hdr)
			if p.status != c.status {
				t.Fatalf("status %d, want %d", p.status, c.status)
			}
		})
	}
	rot, _ := e.audit.Search(t.Context(), AuditQuery{Action: "key.rotate"})
	if len(rot) != 1 || rot[0].Actor != "alice@example.com" || rot[0].Target != "mobile-app" {
		t.Errorf("rotations audited: %+v", rot)
	}
}

func TestDashboard_RotateShowsTheKeyOnce(t *testing.T) {
	e := newTestEnv(t, nil)
	b := e.browser()
	b.signIn("alice")
	token := csrfOf(t, b.get("/ui/consumers").body)
	p := b.do("POST", "/ui/consumers/mobile-app/rotate", url.Values{"slot": {"secondary"}, "csrf": {token}}, map[string]string{"Origin": e.srv.URL})
	if p.status != 200 || !strings.Contains(p.body, `id="new-key" readonly value="ghk_`) {
		t.Fatalf("rotate: %d %s", p.status, p.body)
	}
	if p.header.Get("Cache-Control") != "no-store" {
		t.Error("the page with the key may be cached")
	}
	if strings.Contains(b.get("/ui/consumers").body, "ghk_") {
		t.Error("the consumers page shows a key")
	}
}

// A revocation is confirmed on the consumers page; a link cannot make
// that page, or the sign-in callback, show text of its choosing.
func TestDashboard_ConfirmationsAreTheDashboardsOwnWords(t *testing.T) {
	e := newTestEnv(t, nil)
	b := e.browser()
	b.signIn("alice")
	token := csrfOf(t, b.get("/ui/consumers").body)
	p := b.do("POST", "/ui/consumers/mobile-app/rotate", url.Values{"slot": {"secondary"}, "csrf": {token}}, map[string]string{"Origin": e.srv.URL})
	if p.status != 200 {
		t.Fatalf("rotate: %d", p.status)
	}
	p = b.do("POST", "/ui/consumers/mobile-app/revoke", url.Values{"slot": {"secondary"}, "csrf": {token}}, map[string]string{"Origin": e.srv.URL})
	if p.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", p.status)
	}
	if got := b.get(p.location).body; !strings.Contains(got, "Revoked the secondary key of mobile-app.") {
		t.Fatalf("no confirmation after the revocation:\n%s", got)
	}
	for _, link := range []string{
		"/ui/consumers?done=" + url.QueryEscape("Key rotated; paste your key at evil.example"),
		"/ui/consumers?revoked=secondary&consumer=" + url.QueryEscape("paste your key at https://evil.example"),
		"/ui/callback?error=" + url.QueryEscape("Session expired. Paste your key at evil.example"),
	} {
		if got := b.get(link).body; strings.Contains(got, "evil.example") {
			t.Fatalf("%s shows the link's text", link)
		}
	}
	if got := b.get("/ui/callback?error=access_denied").body; !strings.Contains(got, "(access_denied)") {
		t.Fatal("an OAuth error code is not shown")
	}
}

// With Secure cookies (an https redirect URL) both cookies carry the
// __Host- prefix, which a sibling subdomain cannot set.
func TestDashboard_SecureCookiesAreHostOnly(t *testing.T) {
	d := &Dashboard{secureCookies: true}
	w := httptest.NewRecorder()
	d.setSessionCookie(w, "s1")
	d.setCookie(w, true, "st", 600)
	got := w.Result().Header.Values("Set-Cookie")
	want := []string{
		"__Host-gatehouse_session=s1; Path=/; HttpOnly; Secure; SameSite=Lax",
		"__Host-gatehouse_login=st; Path=/; Max-Age=600; HttpOnly; Secure; SameSite=Lax",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Set-Cookie %q, want %q", got, want)
	}
}

// A link to the callback that is not the answer to this browser's sign-in
// (another state, or none, with an error) does not end that sign-in.
func TestDashboard_ForeignCallbackLeavesTheSignInUnderWay(t *testing.T) {
	e := newTestEnv(t, nil)
	b := e.browser()
	cb, _ := b.startSignIn("alice")
	if p := b.get("/ui/callback?error=access_denied"); p.status != http.StatusUnauthorized {
		t.Fatalf("a foreign error callback: %d", p.status)
	}
	if p := b.get(cb); p.status != http.StatusFound {
		t.Fatalf("the real callback after a foreign one: %d, want the sign-in to complete", p.status)
	}
}

func TestDashboard_ViewerCannotChangeKeys(t *testing.T) {
	e := newTestEnv(t, nil)
	b := e.browser()
	b.signIn("bob")
	page := b.get("/ui/consumers").body
	if strings.Contains(page, "/rotate") {
		t.Error("a viewer sees the rotate forms")
	}
	token := csrfOf(t, page) // the sign-out form's
	p := b.do("POST", "/ui/consumers/mobile-app/rotate", url.Values{"slot": {"primary"}, "csrf": {token}}, map[string]string{"Origin": e.srv.URL})
	if p.status != http.StatusForbidden {
		t.Fatalf("viewer rotate: %d", p.status)
	}
}

func TestDashboard_SessionsEndWhenIdleOrOld(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.IdleTimeout, o.AbsoluteTimeout = 10*time.Minute, time.Hour })
	b := e.browser()
	b.signIn("alice")
	for range 8 { // 8 × 9 min: used within the idle timeout, until past the absolute one
		e.clk.Advance(9 * time.Minute)
		if p := b.get("/ui/"); p.status != 200 {
			if e.clk.Now().Sub(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)) < time.Hour {
				t.Fatalf("session ended early, at %v", e.clk.Now())
			}
			break
		}
	}
	if p := b.get("/ui/"); p.status != http.StatusFound {
		t.Fatal("session outlived the absolute timeout")
	}
	b.signIn("alice")
	e.clk.Advance(11 * time.Minute)
	if p := b.get("/ui/"); p.status != http.StatusFound {
		t.Fatal("session outlived the idle timeout")
	}
}

// A page's own polling (the Overview's statistics every 2 s) does not keep
// a session alive: an Overview left open on an unattended screen signs
// out at the idle timeout.
func TestDashboard_PollingDoesNotKeepASessionAlive(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.IdleTimeout, o.AbsoluteTimeout = 10*time.Minute, time.Hour })
	b := e.browser()
	b.signIn("alice")
	for i := range 4 { // 2 to 8 minutes after the last page
		e.clk.Advance(2 * time.Minute)
		if p := b.get("/ui/data/stats"); p.status != 200 {
			t.Fatalf("polling %d min after the last page: %d", 2*(i+1), p.status)
		}
	}
	e.clk.Advance(4 * time.Minute)
	if p := b.get("/ui/data/stats"); p.status != http.StatusUnauthorized {
		t.Fatalf("polling after 12 min without a person's request: %d, want 401", p.status)
	}
	if p := b.get("/ui/"); p.status != http.StatusFound {
		t.Fatal("the session outlived the idle timeout through polling")
	}
}

// One address cannot fill the table of sign-ins in progress, and a full
// table makes room by dropping the oldest.
func TestDashboard_SignInsInProgressAreBoundedPerAddress(t *testing.T) {
	e := newTestEnv(t, nil)
	b := e.browser()
	for i := range maxPendingPerPeer {
		if p := b.get("/ui/login/start"); p.status != http.StatusFound {
			t.Fatalf("sign-in %d: %d", i, p.status)
		}
	}
	if p := b.get("/ui/login/start"); p.status != http.StatusTooManyRequests {
		t.Fatalf("sign-in %d from one address: %d, want 429", maxPendingPerPeer+1, p.status)
	}
	pl := &pendingLogins{now: e.clk.Now, m: map[string]*pendingLogin{}}
	for i := range maxPending {
		if ok, _ := pl.add(t.Context(), fmt.Sprint(i), &pendingLogin{created: e.clk.Now(), peer: fmt.Sprintf("10.0.%d.%d", i/200, i%200)}); !ok {
			t.Fatalf("login %d refused", i)
		}
		e.clk.Advance(time.Millisecond)
	}
	if ok, _ := pl.add(t.Context(), "new", &pendingLogin{created: e.clk.Now(), peer: "192.0.2.1"}); !ok {
		t.Fatal("a login refused when the table is full")
	}
	if len(pl.m) != maxPending || pl.m["0"] != nil || pl.m["new"] == nil {
		t.Fatalf("%d logins; the oldest kept: %v", len(pl.m), pl.m["0"] != nil)
	}
}

// Behind a reverse proxy listed in server.trusted_proxies, sign-ins are
// counted by the address the proxy forwards: people behind one proxy are
// not one address. From a peer that is not trusted, X-Forwarded-For is
// ignored, so a client cannot dodge the bound by varying it.
func TestDashboard_SignInsInProgressCountedByForwardedAddress(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		t.Run(fmt.Sprintf("trusted=%v", trusted), func(t *testing.T) {
			e := newTestEnv(t, nil)
			if trusted {
				e.snap = compileSnapshot(t, e.stats, "server: {trusted_proxies: [127.0.0.0/8]}\n"+testConfig)
			}
			b := e.browser()
			from := func(addr string) int {
				return b.do("GET", "/ui/login/start", nil, map[string]string{"X-Forwarded-For": addr}).status
			}
			for i := range maxPendingPerPeer {
				if st := from("203.0.113.1"); st != http.StatusFound {
					t.Fatalf("sign-in %d: %d", i, st)
				}
			}
			if st := from("203.0.113.1"); st != http.StatusTooManyRequests {
				t.Fatalf("sign-in %d from 203.0.113.1: %d, want 429", maxPendingPerPeer+1, st)
			}
			want := http.StatusFound // another person behind the proxy
			if !trusted {
				want = http.StatusTooManyRequests // the same peer, whatever it forwards
			}
			if st := from("203.0.113.2"); st != want {
				t.Fatalf("a sign-in forwarded for 203.0.113.2: %d, want %d", st, want)
			}
		})
	}
}

func TestDashboard_SignOutEndsTheSession(t *testing.T) {
	e := newTestEnv(t, nil)
	b := e.browser()
	b.signIn("alice")
	token := csrfOf(t, b.get("/ui/").body)
	if p := b.do("POST", "/ui/logout", url.Values{"csrf": {token}}, map[string]string{"Origin": e.srv.URL}); p.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", p.status)
	}
	if p := b.get("/ui/"); p.status != http.StatusFound {
		t.Error("still signed in after signing out")
	}
}

func TestDashboard_InsecureLocalOnlyForLoopbackPeersAndHosts(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.OIDC, o.InsecureLocal = nil, true })
	cases := []struct {
		name, remote, host string
		in                 bool
	}{
		{"loopback", "127.0.0.1:5000", "127.0.0.1:9901", true},
		{"localhost name", "[::1]:5000", "localhost:9901", true},
		{"remote peer", "192.0.2.7:5000", "127.0.0.1:9901", false},
		{"rebound host name", "127.0.0.1:5000", "evil.example:9901", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "/ui/", nil)
			r.RemoteAddr, r.Host = c.remote, c.host
			w := newRecorder()
			e.dash.ServeHTTP(w, r)
			if got := w.code == 200; got != c.in {
				t.Errorf("status %d; want in=%v", w.code, c.in)
			}
		})
	}
}

func TestDashboard_ErrorsAreFriendlyAndKeepCausesInTheLog(t *testing.T) {
	e := newTestEnv(t, func(o *Options) { o.Consumers = failingConsumers{} })
	b := e.browser()
	b.signIn("alice")
	p := b.get("/ui/consumers")
	if p.status != http.StatusBadGateway || strings.Contains(p.body, "hunter2") || strings.Contains(p.body, "goroutine") {
		t.Fatalf("error page: %d %s", p.status, p.body)
	}
	if !strings.Contains(p.body, "could not be read") {
		t.Error("the error page says nothing useful")
	}
	if !strings.Contains(e.logs.String(), "postgres://") {
		t.Error("the cause did not reach the log")
	}
	if p := b.get("/ui/nope"); p.status != 404 || !strings.Contains(p.body, "There is no such page") {
		t.Errorf("unknown page: %d", p.status)
	}
}

func TestDashboard_EveryPageRenders(t *testing.T) {
	e := newTestEnv(t, nil)
	e.snap.Operations() // compiled with stats handles
	b := e.browser()
	b.signIn("alice")
	for path, want := range map[string]string{
		"/ui/":                           "Latency and errors per API",
		"/ui/?window=1h":                 "last hour",
		"/ui/apis":                       "groups: any of admins",
		"/ui/apis?q=deleteOrder":         "1 operation match",
		"/ui/backends":                   "http://127.0.0.1:1",
		"/ui/consumers":                  "mobile-app",
		"/ui/audit?action=key.":          "Chain verified",
		"/ui/audit?actor=setup":          "consumer.create",
		"/ui/anomalies":                  "Anomaly detection is not connected",
		"/ui/suggestions":                "The suggestions are not connected",
		"/ui/config":                     "Compare selected versions",
		"/ui/config/versions/v1":         "b: 2",
		"/ui/config/diff?from=v1&to=v2":  "1 line added",
		"/ui/login":                      "",
		"/ui/static/app.js":              "startOverview",
		"/ui/static/app.css":             "--accent",
		"/ui/data/stats?window=1m":       `"window":"1m"`,
		"/ui/config/diff?from=v1&to=v99": "Choose two versions",
	} {
		p := b.get(path)
		if path == "/ui/login" {
			if p.status != http.StatusFound {
				t.Errorf("%s when signed in: %d, want a redirect", path, p.status)
			}
			continue
		}
		if (p.status != 200 && path != "/ui/config/diff?from=v1&to=v99") || !strings.Contains(p.body, want) {
			t.Errorf("%s: %d, %q not found", path, p.status, want)
		}
	}
}

func TestDashboard_APIsShowSourceLine(t *testing.T) {
	e := newTestEnv(t, nil)
	b := e.browser()
	b.signIn("bob")
	body := b.get("/ui/apis").body
	// deleteOrder is the second operation, at line 17 of testConfig.
	if !strings.Contains(body, "<code>gatehouse.yaml:17</code>") {
		t.Errorf("operation source line missing: %s", body)
	}
}

func TestDashboard_ChainBreakIsShown(t *testing.T) {
	e := newTestEnv(t, nil)
	e.audit.Tamper(1, "changed afterwards")
	b := e.browser()
	b.signIn("alice")
	if p := b.get("/ui/audit"); !strings.Contains(p.body, "Chain broken") {
		t.Error("a tampered entry is not reported")
	}
}

func TestSafeReturn_RefusesOpenRedirects(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/apis?q=x":         "/ui/apis?q=x",
		"https://evil.example": "/ui/",
		"//evil.example/ui/":   "/ui/",
		"/ui/\\evil":           "/ui/",
		"/ui/apis?q=a\x00b":    "/ui/",
		"/ui/apis?q=\xff":      "/ui/",
		"/ui/login":            "/ui/",
		"":                     "/ui/",
		"/ui/apis?q=" + strings.Repeat("x", maxReturn): "/ui/", // kept ten minutes per sign-in: bounded
	} {
		if got := safeReturn(in); got != want {
			t.Errorf("safeReturn(%q) = %q, want %q", in, got, want)
		}
	}
}
