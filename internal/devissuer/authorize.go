package devissuer

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// codeTTL is how long an authorization code can be exchanged.
const codeTTL = 2 * time.Minute

// maxCodes bounds the outstanding authorization codes.
const maxCodes = 10000

// authCode is an issued, not yet exchanged authorization code.
type authCode struct {
	clientID    string
	redirectURI string
	challenge   string
	nonce       string
	scopes      []string
	user        User
	authTime    time.Time
	expires     time.Time
}

// pageHTML is the one page the issuer shows: a message and, when
// choosing a user, links. html/template escapes every value.
const pageHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gatehouse development issuer</title></head>
<body>
<h1>Gatehouse development issuer</h1>
<p><strong>For development only.</strong> {{.Message}}</p>
{{if .Users}}<ul>
{{range .Users}}<li><a href="{{.Link}}">{{.Name}}</a> ({{.Subject}})</li>
{{end}}</ul>{{end}}
</body></html>
`

type pageUser struct {
	Link, Name, Subject string
}

type page struct {
	Message string
	Users   []pageUser
}

func (i *Issuer) writePage(w http.ResponseWriter, status int, p page) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = i.page.Execute(w, p)
}

// serveAuthorize is the authorization endpoint (RFC 6749 §4.1.1 with
// PKCE). It auto-approves: login_hint (a user's subject or email) picks
// the demo user; with one user it is chosen, with several and no hint a
// page lists them. Problems with client_id or redirect_uri are shown on a
// page (never redirected, RFC 6749 §4.1.2.1); others are redirected to
// the client with error and state.
func (i *Issuer) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if len(i.users) == 0 {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	c := i.clients[q.Get("client_id")]
	if c == nil {
		i.writePage(w, http.StatusBadRequest, page{Message: "Unknown client_id."})
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !redirectAllowed(c, redirectURI) {
		i.writePage(w, http.StatusBadRequest, page{Message: "redirect_uri is not registered for this client."})
		return
	}
	state := q.Get("state")
	fail := func(code, desc string) {
		i.redirect(w, r, redirectURI, url.Values{"error": {code}, "error_description": {desc}, "state": {state}})
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	}
	challenge := q.Get("code_challenge")
	if q.Get("code_challenge_method") != "S256" || len(challenge) != 43 {
		fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
		return
	}
	user, ok := i.pickUser(q.Get("login_hint"))
	if !ok {
		if q.Get("login_hint") != "" {
			fail("access_denied", "login_hint names no demo user")
			return
		}
		i.writePage(w, http.StatusOK, page{Message: "Choose a demo user to sign in as.", Users: i.userLinks(r)})
		return
	}
	var scopes []string
	for _, s := range strings.Fields(q.Get("scope")) {
		if slices.Contains([]string{"openid", "profile", "email"}, s) || slices.Contains(c.Scopes, s) {
			scopes = append(scopes, s)
		}
	}
	now := i.now()
	code := randomString(32)
	ac := &authCode{
		clientID: c.ID, redirectURI: redirectURI, challenge: challenge, nonce: q.Get("nonce"),
		scopes: scopes, user: user, authTime: now, expires: now.Add(codeTTL),
	}
	i.mu.Lock()
	for k, v := range i.codes {
		if now.After(v.expires) {
			delete(i.codes, k)
		}
	}
	full := len(i.codes) >= maxCodes
	if !full {
		i.codes[code] = ac
	}
	i.mu.Unlock()
	if full {
		fail("temporarily_unavailable", "too many outstanding codes")
		return
	}
	i.redirect(w, r, redirectURI, url.Values{"code": {code}, "state": {state}, "iss": {i.URL()}})
}

// pickUser finds the user named by hint, or the only user when hint is empty.
func (i *Issuer) pickUser(hint string) (User, bool) {
	if hint == "" {
		if len(i.users) == 1 {
			return i.users[0], true
		}
		return User{}, false
	}
	for _, u := range i.users {
		if u.Subject == hint || (u.Email != "" && strings.EqualFold(u.Email, hint)) {
			return u, true
		}
	}
	return User{}, false
}

// userLinks are links to this same request with login_hint set per user.
func (i *Issuer) userLinks(r *http.Request) []pageUser {
	out := make([]pageUser, 0, len(i.users))
	for _, u := range i.users {
		q := r.URL.Query()
		q.Set("login_hint", u.Subject)
		name := u.Name
		if name == "" {
			name = u.Subject
		}
		out = append(out, pageUser{Link: "/authorize?" + q.Encode(), Name: name, Subject: u.Subject})
	}
	return out
}

// redirect sends the user agent back to the client with params added to
// the redirect URI's query (RFC 6749 §4.1.2). Empty values are left out.
func (i *Issuer) redirect(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		i.writePage(w, http.StatusBadRequest, page{Message: "redirect_uri is not a URL."})
		return
	}
	q := u.Query()
	for k, vs := range params {
		if len(vs) > 0 && vs[0] != "" {
			q.Set(k, vs[0])
		}
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// redirectAllowed reports whether uri is a registered redirect URI of c,
// or, when c registers none, an http(s) URI on a loopback host.
func redirectAllowed(c *Client, uri string) bool {
	if uri == "" {
		return false
	}
	if len(c.RedirectURIs) > 0 {
		return slices.Contains(c.RedirectURIs, uri)
	}
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Fragment != "" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
