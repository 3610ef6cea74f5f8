package dashboard

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// safeReturn keeps a return path only when it is a dashboard path on this
// host (no open redirect), in valid UTF-8 without control characters (a
// shared store keeps it as PostgreSQL text, which holds no NUL byte).
func safeReturn(p string) string {
	if len(p) > maxReturn || !strings.HasPrefix(p, "/ui/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\") ||
		!utf8.ValidString(p) || strings.ContainsFunc(p, unicode.IsControl) ||
		strings.HasPrefix(p, "/ui/login") || strings.HasPrefix(p, "/ui/callback") || strings.HasPrefix(p, "/ui/data/") {
		return "/ui/"
	}
	return p
}

// maxReturn bounds the page a sign-in returns to (a dashboard URL is
// short; a sign-in in progress keeps it for ten minutes).
const maxReturn = 2048

// serveLogin shows the sign-in page (or, already signed in, goes on).
func (d *Dashboard) serveLogin(w http.ResponseWriter, r *http.Request) {
	ret := safeReturn(r.URL.Query().Get("return"))
	s, err := d.session(w, r)
	if err != nil {
		d.sessionStoreFailed(w, r, err)
		return
	}
	if s != nil {
		http.Redirect(w, r, ret, http.StatusFound)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	data := map[string]any{"Return": ret, "OIDC": d.oidc != nil, "InsecureLocal": d.o.InsecureLocal}
	if d.oidc != nil {
		data["Issuer"] = d.oidc.o.Issuer
	}
	d.render(w, r, nil, http.StatusOK, "login", "Sign in", data)
}

// serveLoginStart sends the browser to the identity provider.
func (d *Dashboard) serveLoginStart(w http.ResponseWriter, r *http.Request) {
	if d.oidc == nil {
		d.fail(w, r, nil, http.StatusNotFound, "Sign-in with an identity provider is not configured; this dashboard runs with insecure_local and can only be opened from this machine.", nil)
		return
	}
	state := randomToken(32)
	l := &pendingLogin{
		verifier: randomToken(32), // 43 characters, RFC 7636 §4.1
		nonce:    randomToken(32),
		returnTo: safeReturn(r.URL.Query().Get("return")),
		created:  d.now(),
		peer:     d.peerAddr(r),
	}
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	u, err := d.oidc.authURL(ctx, state, l)
	if err != nil {
		d.fail(w, r, nil, http.StatusBadGateway, "The identity provider cannot be reached right now. Try again in a moment.", err)
		return
	}
	ok, err := d.pending.add(r.Context(), state, l)
	if err != nil {
		d.sessionStoreFailed(w, r, err)
		return
	}
	if !ok {
		d.fail(w, r, nil, http.StatusTooManyRequests, "Too many sign-ins are in progress from this address. Finish one, or try again in a few minutes.", nil)
		return
	}
	// The state cookie binds the callback to this browser (login CSRF).
	d.setCookie(w, true, state, int(loginTTL.Seconds()))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u, http.StatusFound)
}

// serveCallback finishes the authorization code flow.
func (d *Dashboard) serveCallback(w http.ResponseWriter, r *http.Request) {
	if d.oidc == nil {
		d.fail(w, r, nil, http.StatusNotFound, "Sign-in with an identity provider is not configured.", nil)
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	name, _ := d.cookie(true)
	c, err := r.Cookie(name)
	// Only the answer to this browser's own sign-in ends it: a link to
	// the callback with another state (or none) leaves it under way.
	ours := state != "" && err == nil && c.Value == state
	if ours {
		d.setCookie(w, true, "", -1)
	}
	if e := q.Get("error"); e != "" {
		if ours {
			if _, err := d.pending.take(r.Context(), state); err != nil {
				d.logger.Warn("dashboard: ending a refused sign-in failed", "error", err.Error())
			}
		}
		// Shown only when it is an OAuth error code (RFC 6749 §4.1.2.1
		// lists them: access_denied...), never as text a link chose.
		msg := "The identity provider did not sign you in. Try again from the sign-in page."
		if oauthErrorCode(e) {
			msg = "The identity provider did not sign you in (" + e + "). Try again from the sign-in page."
		}
		d.fail(w, r, nil, http.StatusUnauthorized, msg, nil)
		return
	}
	if !ours {
		d.fail(w, r, nil, http.StatusBadRequest, "This sign-in did not start in this browser, or it took too long. Start again from the sign-in page.", errors.New("state does not match the login cookie"))
		return
	}
	l, err := d.pending.take(r.Context(), state)
	if err != nil {
		d.sessionStoreFailed(w, r, err)
		return
	}
	if l == nil {
		d.fail(w, r, nil, http.StatusBadRequest, "This sign-in has expired or was already used. Start again from the sign-in page.", errors.New("unknown or expired state"))
		return
	}
	ctx, cancel := ctxTimeout(r)
	defer cancel()
	who, err := d.oidc.exchange(ctx, q.Get("code"), l)
	if errors.Is(err, errNoRole) {
		d.audit(who.user, "login.denied", "dashboard", OutcomeDenied, "no dashboard role")
		d.fail(w, r, nil, http.StatusForbidden, "You signed in as "+who.name+", but that account has no dashboard role. Ask an administrator to add you to an admin or viewer group.", nil)
		return
	}
	if err != nil {
		d.fail(w, r, nil, http.StatusUnauthorized, "Signing you in failed. Start again from the sign-in page.", err)
		return
	}
	id, _, err := d.sessions.create(r.Context(), who.user, who.name, who.role)
	if err != nil {
		d.sessionStoreFailed(w, r, err)
		return
	}
	d.setSessionCookie(w, id)
	d.audit(who.user, "login", "dashboard", "", "role "+who.role.String())
	http.Redirect(w, r, l.returnTo, http.StatusFound)
}

// serveLogout ends the session.
func (d *Dashboard) serveLogout(w http.ResponseWriter, r *http.Request, s *Session) {
	name, _ := d.cookie(false)
	if c, err := r.Cookie(name); err == nil {
		if err := d.sessions.delete(r.Context(), c.Value); err != nil {
			// The session stays valid; the cookie is kept so that the
			// person can sign out again once the store is back.
			d.fail(w, r, s, http.StatusServiceUnavailable, "Signing you out failed: the dashboard's session store is unavailable. Try again in a moment.", err)
			return
		}
	}
	d.setCookie(w, false, "", -1)
	d.audit(s.User, "logout", "dashboard", "", "")
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// peerAddr is the client's address without its port: the peer's, or,
// when the peer is one of the gateway's trusted proxies
// (server.trusted_proxies), the client's address it forwarded.
func (d *Dashboard) peerAddr(r *http.Request) string {
	if d.o.Snapshot != nil {
		if snap := d.o.Snapshot(); snap != nil {
			if a := snap.ClientAddr(r); a.IsValid() {
				return a.String()
			}
		}
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// oauthErrorCode reports whether e looks like an OAuth error code: 1 to
// 40 lower-case letters and underscores.
func oauthErrorCode(e string) bool {
	if e == "" || len(e) > 40 {
		return false
	}
	for _, c := range e {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}
