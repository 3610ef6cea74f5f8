package devissuer_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
)

func start(t *testing.T, opts devissuer.Options) (*devissuer.Issuer, *httptest.Server) {
	t.Helper()
	iss, err := devissuer.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(iss.Handler())
	t.Cleanup(srv.Close)
	iss.SetURL(srv.URL)
	return iss, srv
}

var demoClients = []devissuer.Client{
	{ID: "svc", Secret: "s3cret/+&=", Subject: "svc-account", Groups: []string{"ops"},
		Roles: []string{"reader"}, Scopes: []string{"orders:read", "orders:write"}},
	{ID: "spa"}, // public client
}

var demoUsers = []devissuer.User{
	{Subject: "alice", Name: "Alice", Email: "alice@example.com", Groups: []string{"admins"}, Roles: []string{"admin"}},
	{Subject: "bob", Name: "<script>alert(1)</script>", Email: "bob@example.com"},
}

func getJSON(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDiscovery(t *testing.T) {
	_, srv := start(t, devissuer.Options{Clients: demoClients})
	doc := getJSON(t, srv.URL+"/.well-known/openid-configuration")
	for k, want := range map[string]string{
		"issuer":                 srv.URL,
		"jwks_uri":               srv.URL + "/jwks",
		"token_endpoint":         srv.URL + "/token",
		"authorization_endpoint": srv.URL + "/authorize",
	} {
		if doc[k] != want {
			t.Errorf("%s = %v, want %s", k, doc[k], want)
		}
	}
	for _, k := range []string{"grant_types_supported", "id_token_signing_alg_values_supported", "scopes_supported",
		"response_types_supported", "subject_types_supported", "code_challenge_methods_supported"} {
		if _, ok := doc[k].([]any); !ok {
			t.Errorf("%s missing", k)
		}
	}
}

// jwks fetches the published keys.
func jwks(t *testing.T, srv *httptest.Server) jose.JSONWebKeySet {
	t.Helper()
	resp, err := http.Get(srv.URL + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	return set
}

// verify checks a token against the published keys and returns its typ
// header and claims.
func verify(t *testing.T, srv *httptest.Server, token string) (string, map[string]any) {
	t.Helper()
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	set := jwks(t, srv)
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys", jws.Signatures[0].Header.KeyID, len(keys))
	}
	payload, err := jws.Verify(&keys[0])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string)
	return typ, claims
}

func postForm(t *testing.T, srv *httptest.Server, form url.Values, user, pass string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp, m
}

func TestToken_ClientCredentials(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256"} {
		for _, basic := range []bool{true, false} {
			name := alg + "/form"
			if basic {
				name = alg + "/basic"
			}
			t.Run(name, func(t *testing.T) {
				_, srv := start(t, devissuer.Options{Clients: demoClients, Algorithm: alg, Audience: "api://orders"})
				form := url.Values{"grant_type": {"client_credentials"}}
				user, pass := "", ""
				if basic {
					user, pass = "svc", "s3cret/+&="
				} else {
					form.Set("client_id", "svc")
					form.Set("client_secret", "s3cret/+&=")
				}
				resp, body := postForm(t, srv, form, user, pass)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %s, body %v", resp.Status, body)
				}
				if body["token_type"] != "Bearer" || body["expires_in"] != float64(3600) {
					t.Errorf("response %v", body)
				}
				if resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
				}
				typ, claims := verify(t, srv, body["access_token"].(string))
				if typ != "at+jwt" {
					t.Errorf("typ %q", typ)
				}
				want := map[string]any{"iss": srv.URL, "sub": "svc-account", "aud": "api://orders",
					"client_id": "svc", "scope": "orders:read orders:write"}
				for k, v := range want {
					if claims[k] != v {
						t.Errorf("%s = %v, want %v", k, claims[k], v)
					}
				}
				for _, k := range []string{"jti", "iat", "exp", "groups", "roles"} {
					if claims[k] == nil {
						t.Errorf("%s missing", k)
					}
				}
			})
		}
	}
}

func TestToken_RequestedScopeMustBeGranted(t *testing.T) {
	_, srv := start(t, devissuer.Options{Clients: demoClients})
	resp, body := postForm(t, srv, url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read"}}, "svc", "s3cret/+&=")
	if resp.StatusCode != http.StatusOK || body["scope"] != "orders:read" {
		t.Fatalf("%s %v", resp.Status, body)
	}
	resp, body = postForm(t, srv, url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, "svc", "s3cret/+&=")
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Fatalf("%s %v", resp.Status, body)
	}
}

func TestToken_RejectsWrongSecret(t *testing.T) {
	_, srv := start(t, devissuer.Options{Clients: demoClients})
	cases := []struct {
		name       string
		form       url.Values
		user, pass string
		challenge  bool
	}{
		{"basic wrong secret", url.Values{}, "svc", "nope", true},
		{"form wrong secret", url.Values{"client_id": {"svc"}, "client_secret": {"nope"}}, "", "", false},
		{"unknown client", url.Values{"client_id": {"who"}, "client_secret": {"x"}}, "", "", false},
		{"no secret for confidential client", url.Values{"client_id": {"svc"}}, "", "", false},
		{"public client has no client_credentials secret", url.Values{"client_id": {"spa"}, "client_secret": {"x"}}, "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("grant_type", "client_credentials")
			resp, body := postForm(t, srv, tc.form, tc.user, tc.pass)
			if resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid_client" {
				t.Fatalf("%s %v", resp.Status, body)
			}
			if got := resp.Header.Get("WWW-Authenticate") != ""; got != tc.challenge {
				t.Errorf("WWW-Authenticate present = %v", got)
			}
			if desc, _ := body["error_description"].(string); strings.Contains(desc+resp.Header.Get("WWW-Authenticate"), "nope") {
				t.Error("the secret is echoed")
			}
		})
	}
}

func TestToken_Errors(t *testing.T) {
	_, srv := start(t, devissuer.Options{Clients: demoClients})
	resp, body := postForm(t, srv, url.Values{"grant_type": {"password"}}, "svc", "s3cret/+&=")
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "unsupported_grant_type" {
		t.Errorf("unsupported grant: %s %v", resp.Status, body)
	}
	resp, body = postForm(t, srv, url.Values{"grant_type": {"client_credentials"}, "client_secret": {"s3cret/+&="}}, "svc", "s3cret/+&=")
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Errorf("two auth methods: %s %v", resp.Status, body)
	}
	r, err := http.Get(srv.URL + "/token")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /token: %s", r.Status)
	}
}

func pkcePair() (verifier, challenge string) {
	verifier = strings.Repeat("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", 1)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func authorize(t *testing.T, srv *httptest.Server, q url.Values) *http.Response {
	t.Helper()
	resp, err := noRedirect.Get(srv.URL + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func authzQuery(challenge string) url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {"spa"}, "redirect_uri": {"http://127.0.0.1:5555/cb?x=1"},
		"state": {"st<>ate"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
		"scope": {"openid email orders:read"}, "nonce": {"n-0S6"}, "login_hint": {"alice"},
	}
}

func TestAuthorizationCodeWithPKCE(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	_, srv := start(t, devissuer.Options{Clients: demoClients, Users: demoUsers, Now: func() time.Time { return now }})
	verifier, challenge := pkcePair()

	resp := authorize(t, srv, authzQuery(challenge))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %s", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Host != "127.0.0.1:5555" || loc.Path != "/cb" || loc.Query().Get("x") != "1" ||
		loc.Query().Get("state") != "st<>ate" || loc.Query().Get("iss") != srv.URL {
		t.Fatalf("redirect %s", loc)
	}
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatal("no code")
	}

	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"spa"},
		"redirect_uri": {"http://127.0.0.1:5555/cb?x=1"}, "code_verifier": {verifier}}
	tr, body := postForm(t, srv, exchange, "", "")
	if tr.StatusCode != http.StatusOK {
		t.Fatalf("exchange: %s %v", tr.Status, body)
	}
	typ, id := verify(t, srv, body["id_token"].(string))
	if typ != "JWT" || id["aud"] != "spa" || id["nonce"] != "n-0S6" || id["sub"] != "alice" || id["email"] != "alice@example.com" {
		t.Errorf("id_token typ %q claims %v", typ, id)
	}
	typ, access := verify(t, srv, body["access_token"].(string))
	if typ != "at+jwt" || access["sub"] != "alice" || access["aud"] != devissuer.DefaultAudience ||
		access["scope"] != "openid email" /* orders:read is not granted to spa */ || access["exp"] != float64(now.Add(time.Hour).Unix()) {
		t.Errorf("access token typ %q claims %v", typ, access)
	}

	// A code is single-use.
	tr, body = postForm(t, srv, exchange, "", "")
	if tr.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("reused code: %s %v", tr.Status, body)
	}
}

func TestAuthorizationCode_RejectsWrongVerifier(t *testing.T) {
	_, srv := start(t, devissuer.Options{Clients: demoClients, Users: demoUsers})
	_, challenge := pkcePair()
	resp := authorize(t, srv, authzQuery(challenge))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	code := loc.Query().Get("code")
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"spa"},
		"redirect_uri": {"http://127.0.0.1:5555/cb?x=1"}, "code_verifier": {strings.Repeat("a", 43)}}
	tr, body := postForm(t, srv, exchange, "", "")
	if tr.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" || body["access_token"] != nil {
		t.Fatalf("%s %v", tr.Status, body)
	}
}

func TestAuthorize_Refusals(t *testing.T) {
	_, challenge := pkcePair()
	t.Run("no users → 404", func(t *testing.T) {
		_, srv := start(t, devissuer.Options{Clients: demoClients})
		if resp := authorize(t, srv, authzQuery(challenge)); resp.StatusCode != http.StatusNotFound {
			t.Fatal(resp.Status)
		}
	})
	_, srv := start(t, devissuer.Options{Clients: demoClients, Users: demoUsers})
	t.Run("open redirect refused", func(t *testing.T) {
		q := authzQuery(challenge)
		q.Set("redirect_uri", "https://evil.example/cb")
		resp := authorize(t, srv, q)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatal(resp.Status)
		}
	})
	t.Run("plain PKCE refused", func(t *testing.T) {
		q := authzQuery(challenge)
		q.Set("code_challenge_method", "plain")
		loc, _ := url.Parse(authorize(t, srv, q).Header.Get("Location"))
		if loc.Query().Get("error") != "invalid_request" || loc.Query().Get("code") != "" {
			t.Fatal(loc)
		}
	})
	t.Run("chooser page escapes names", func(t *testing.T) {
		q := authzQuery(challenge)
		q.Del("login_hint")
		resp := authorize(t, srv, q)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || strings.Contains(string(b), "<script>") ||
			!strings.Contains(string(b), "&lt;script&gt;") || !strings.Contains(string(b), "login_hint=bob") {
			t.Fatalf("%s\n%s", resp.Status, b)
		}
	})
}

func TestRotationPublishesBothKeys(t *testing.T) {
	iss, srv := start(t, devissuer.Options{})
	old := iss.KeyID()
	if err := iss.RotateKey(); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range jwks(t, srv).Keys {
		if k.Use != "sig" || k.Algorithm != "RS256" || !k.IsPublic() {
			t.Errorf("key %s: use %q alg %q public %v", k.KeyID, k.Use, k.Algorithm, k.IsPublic())
		}
		kids = append(kids, k.KeyID)
	}
	if len(kids) != 2 || !slices.Contains(kids, old) || !slices.Contains(kids, iss.KeyID()) || old == iss.KeyID() {
		t.Fatalf("kids %v (old %s, new %s)", kids, old, iss.KeyID())
	}
	tok, err := iss.Mint(map[string]any{"sub": "x"})
	if err != nil {
		t.Fatal(err)
	}
	verify(t, srv, tok) // signed with the new key
	iss.RetireOldKeys()
	if keys := jwks(t, srv).Keys; len(keys) != 1 || keys[0].KeyID != iss.KeyID() {
		t.Fatalf("after retire: %v", keys)
	}
}

func TestDownAndRequestCounts(t *testing.T) {
	iss, srv := start(t, devissuer.Options{})
	iss.SetDown(true)
	for _, p := range []string{"/jwks", "/.well-known/openid-configuration", "/elsewhere"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s while down: %s", p, resp.Status)
		}
	}
	iss.SetDown(false)
	jwks(t, srv)
	if n := iss.Requests("/jwks"); n != 2 {
		t.Errorf("Requests(/jwks) = %d", n)
	}
	if n := iss.Requests("/elsewhere"); n != 1 {
		t.Errorf("Requests(/elsewhere) = %d", n)
	}
}

func TestJWKSConditionalRequest(t *testing.T) {
	_, srv := start(t, devissuer.Options{})
	resp, err := http.Get(srv.URL + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/jwks", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp.Header.Get("ETag") == "" || resp2.StatusCode != http.StatusNotModified {
		t.Fatalf("ETag %q, conditional status %s", resp.Header.Get("ETag"), resp2.Status)
	}
}

func TestMintOverrides(t *testing.T) {
	iss, srv := start(t, devissuer.Options{})
	tok, err := iss.MintWithHeader(map[string]any{"typ": "JWT", "jku": "http://x/"}, map[string]any{"exp": nil, "sub": "s"})
	if err != nil {
		t.Fatal(err)
	}
	typ, claims := verify(t, srv, tok)
	if typ != "JWT" || claims["exp"] != nil || claims["sub"] != "s" || claims["iss"] != srv.URL {
		t.Fatalf("typ %q claims %v", typ, claims)
	}
	tok, err = iss.MintWithHeader(map[string]any{"kid": nil}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || jws.Signatures[0].Header.KeyID != "" {
		t.Fatalf("kid %q err %v", jws.Signatures[0].Header.KeyID, err)
	}
	if _, err := devissuer.New(devissuer.Options{Algorithm: "HS256"}); err == nil {
		t.Error("HS256 accepted")
	}
	unset, _ := devissuer.New(devissuer.Options{})
	if _, err := unset.Mint(nil); err == nil {
		t.Error("Mint without URL succeeded")
	}
}
