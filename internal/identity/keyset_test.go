package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

func TestKeySet_RotatedKeyAcceptedWithoutRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.idp()
	old := e.mint(nil)
	if err := d.RotateKey(); err != nil {
		t.Fatal(err)
	}
	before := d.Requests("/jwks")
	fresh := e.mint(nil) // signed with the new key, new kid
	p, err := e.verify(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if p.KeyID != d.KeyID() {
		t.Fatalf("kid %s, want %s", p.KeyID, d.KeyID())
	}
	if n := d.Requests("/jwks") - before; n != 1 {
		t.Fatalf("%d JWKS fetches for the new kid, want 1", n)
	}
	if _, err := e.verify(old); err != nil { // old key still published
		t.Fatalf("old token: %v", err)
	}
}

func TestKeySet_IdPDownKeepsServingCachedKeys(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.idp()
	set := e.provs[0].KeySet()
	tok := e.mint(nil)
	d.SetDown(true)
	if err := set.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh succeeded against a down IdP")
	}
	if !set.Ready() {
		t.Fatal("Ready became false")
	}
	if e.fetchCount(identity.FetchError) == 0 {
		t.Fatal("the hook was not told of the error")
	}
	if _, err := e.verify(tok); err != nil {
		t.Fatalf("cached key while the IdP is down: %v", err)
	}
	// A new kid while down is an unknown key, not an outage.
	_, err := e.verify(e.mintWith(d, map[string]any{"kid": "new"}, nil))
	wantReason(t, err, identity.ReasonUnknownKey, "")
}

func TestKeySet_IssuerUnavailableWhenNeverFetched(t *testing.T) {
	e := newEnv(t, envOptions{noRefresh: true})
	d := e.idp()
	d.SetDown(true)
	tok := e.mint(nil)
	_, err := e.verify(tok)
	ie := wantReason(t, err, identity.ReasonIssuerUnavailable, tok)
	if ie.Err == nil {
		t.Error("no cause for the log")
	}
	if e.provs[0].KeySet().Ready() {
		t.Fatal("Ready with no keys")
	}
	// Within the cooldown, no new attempt: still unavailable, no request.
	n := d.Requests("/.well-known/openid-configuration")
	_, err = e.verify(tok)
	wantReason(t, err, identity.ReasonIssuerUnavailable, tok)
	if d.Requests("/.well-known/openid-configuration") != n {
		t.Fatal("a fetch within the cooldown")
	}
	// The IdP comes back; after the cooldown the next token fetches.
	d.SetDown(false)
	e.clk.Advance(identity.DefaultCooldown)
	if _, err := e.verify(tok); err != nil {
		t.Fatal(err)
	}
}

func TestKeySet_FloodOfRandomKidsFetchesOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.idp()
	before := d.Requests("/jwks")
	claims := validClaims(d, e.clk)
	var (
		wg      sync.WaitGroup
		unknown atomic.Int64
	)
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				kid := fmt.Sprintf("random-%d-%d", g, i)
				tok := rawToken(t, map[string]any{"alg": "RS256", "kid": kid, "typ": "at+jwt"}, claims, []byte("sig"))
				_, err := e.verify(tok)
				if ie, ok := err.(*identity.Error); ok && ie.Reason == identity.ReasonUnknownKey {
					unknown.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if unknown.Load() != 1000 {
		t.Errorf("%d of 1000 refused as unknown_key", unknown.Load())
	}
	if n := d.Requests("/jwks") - before; n != 1 {
		t.Fatalf("%d JWKS fetches for 1000 random kids, want 1", n)
	}
	if n := d.Requests("/.well-known/openid-configuration"); n != 1 {
		t.Fatalf("%d discovery fetches, want 1 (at startup)", n)
	}
}

func TestKeySet_CooldownElapsedAllowsAnotherFetch(t *testing.T) {
	e := newEnv(t, envOptions{keyOpts: func(o *identity.KeySetOptions) { o.Cooldown = time.Minute }})
	d := e.idp()
	before := d.Requests("/jwks")
	tok := e.mintWith(d, map[string]any{"kid": "x"}, nil)
	for i := 0; i < 3; i++ {
		_, err := e.verify(tok)
		wantReason(t, err, identity.ReasonUnknownKey, tok)
	}
	e.clk.Advance(59 * time.Second)
	_, _ = e.verify(tok)
	if n := d.Requests("/jwks") - before; n != 1 {
		t.Fatalf("%d fetches before the cooldown ended, want 1", n)
	}
	e.clk.Advance(time.Second)
	_, _ = e.verify(tok)
	if n := d.Requests("/jwks") - before; n != 2 {
		t.Fatalf("%d fetches after the cooldown, want 2", n)
	}
}

func TestKeySet_RefusesDiscoveryWithMismatchedIssuer(t *testing.T) {
	clk := newClock()
	d := newIDP(t, clk, "")
	d.SetURL("https://impostor.example") // the document will name another issuer
	sets := identity.NewKeySets(nil, identity.Hooks{})
	defer sets.Close()
	set := sets.Get("p", identity.KeySetOptions{Issuer: d.srv.URL})
	err := set.Refresh(context.Background())
	if err == nil || !strings.Contains(err.Error(), "impostor") {
		t.Fatalf("Refresh: %v", err)
	}
	if set.Ready() {
		t.Fatal("keys accepted from a document for another issuer")
	}
	if n := d.Requests("/jwks"); n != 0 {
		t.Fatalf("the JWKS was fetched %d times", n)
	}
	_, err = set.Key(context.Background(), d.KeyID(), "RS256")
	wantReason(t, err, identity.ReasonIssuerUnavailable, "")
}

func TestKeySet_BackgroundRetryAfterFailure(t *testing.T) {
	e := newEnv(t, envOptions{noRefresh: true, keyOpts: func(o *identity.KeySetOptions) { o.RefreshInterval = 20 * time.Millisecond }})
	d := e.idp()
	set := e.provs[0].KeySet()
	d.SetDown(true)
	if err := set.Refresh(context.Background()); err == nil {
		t.Fatal("Refresh succeeded against a down IdP")
	}
	d.SetDown(false)
	// Backoff is capped by the 20ms refresh interval; poll, bounded.
	deadline := time.Now().Add(5 * time.Second)
	for !set.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the background retry did not fetch the keys")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if e.fetchCount(identity.FetchOK) == 0 {
		t.Fatal("no ok hook")
	}
}

func TestKeySet_ConditionalRefreshNotModified(t *testing.T) {
	e := newEnv(t, envOptions{})
	if err := e.provs[0].KeySet().Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.fetchCount(identity.FetchNotModified) != 1 {
		t.Fatalf("outcomes %v", e.fetches)
	}
}

// A provider renamed in the configuration keeps its set, and the set
// reports its fetches under the new name (the metric's provider label)
// once the configuration is in place; not before.
func TestKeySets_RenamedProviderReportsUnderItsNewName(t *testing.T) {
	clk := newClock()
	d := newIDP(t, clk, "")
	var mu sync.Mutex
	var names []string
	sets := identity.NewKeySets(nil, identity.Hooks{OnFetch: func(provider, _ string) {
		mu.Lock()
		defer mu.Unlock()
		names = append(names, provider)
	}})
	defer sets.Close()
	a := sets.Get("old", identity.KeySetOptions{Issuer: d.URL()})
	b, apply := sets.Prepare("new", identity.KeySetOptions{Issuer: d.URL()})
	if b != a || apply == nil {
		t.Fatal("a renamed provider did not keep its set")
	}
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	apply()
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(names) != 2 || names[0] != "old" || names[1] != "new" {
		t.Fatalf("fetches reported as %q, want [old new]", names)
	}
}

func TestKeySets_GetSharesAndRetainCloses(t *testing.T) {
	clk := newClock()
	d := newIDP(t, clk, "")
	sets := identity.NewKeySets(nil, identity.Hooks{})
	defer sets.Close()
	a := sets.Get("a", identity.KeySetOptions{Issuer: d.URL()})
	if err := a.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := sets.Get("renamed", identity.KeySetOptions{Issuer: d.URL(), Cooldown: time.Minute}); b != a {
		t.Fatal("same issuer, JWKS URL and CA file gave another set")
	}
	c := sets.Get("c", identity.KeySetOptions{Issuer: d.URL(), JWKSURL: d.URL() + "/jwks"})
	if c == a {
		t.Fatal("another JWKS URL gave the same set")
	}
	sets.Retain([]*identity.KeySet{c})
	if a2 := sets.Get("a", identity.KeySetOptions{Issuer: d.URL()}); a2 == a || a2.Ready() {
		t.Fatal("a retired set was handed out again")
	}
	// A closed set still answers from its cache, for snapshots holding it.
	if keys, err := a.Key(context.Background(), d.KeyID(), "RS256"); err != nil || len(keys) != 1 {
		t.Fatalf("closed set: %v", err)
	}
	if err := a.Refresh(context.Background()); err == nil {
		t.Fatal("a closed set fetched")
	}
}

// jwksServer serves a fixed JWKS body.
func jwksServer(t *testing.T, body func() []byte) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = w.Write(body())
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func jwkJSON(t *testing.T, key any, kid, alg, use string, extra map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: use})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func TestKeySet_FiltersKeys(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	weakRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	keys := []any{
		jwkJSON(t, &rsaKey.PublicKey, "rsa", "", "sig", nil),
		jwkJSON(t, &rsaKey.PublicKey, "rsa-enc", "", "enc", nil),
		jwkJSON(t, &rsaKey.PublicKey, "rsa-oaep", "RSA-OAEP", "", nil),
		jwkJSON(t, []byte("0123456789abcdef0123456789abcdef"), "oct", "HS256", "sig", nil),
		jwkJSON(t, &rsaKey.PublicKey, "bad-x5c", "", "sig", map[string]any{"x5c": []string{"bm90IGEgY2VydGlmaWNhdGU="}}),
		jwkJSON(t, &weakRSA.PublicKey, "weak", "", "sig", nil),
		jwkJSON(t, rsaKey, "private", "", "sig", nil),
		jwkJSON(t, edPriv, "ed-private", "", "sig", nil),
		jwkJSON(t, &p256.PublicKey, "ec", "ES256", "sig", nil),
		jwkJSON(t, &p384.PublicKey, "", "", "", nil),
		jwkJSON(t, edPub, "ed", "", "sig", nil),
		map[string]any{"kty": "UNKNOWN", "kid": "weird"},
		"not an object",
	}
	body, _ := json.Marshal(map[string]any{"keys": keys})
	srv, _ := jwksServer(t, func() []byte { return body })
	logs := &logBuffer{}
	sets := identity.NewKeySets(slog.New(slog.NewTextHandler(logs, nil)), identity.Hooks{})
	defer sets.Close()
	set := sets.Get("p", identity.KeySetOptions{Issuer: "https://issuer.example", JWKSURL: srv.URL})
	if err := set.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kidsFor := func(kid, alg string) []string {
		ks, err := set.Key(ctx, kid, alg)
		if err != nil {
			return nil
		}
		var out []string
		for _, k := range ks {
			out = append(out, k.KeyID)
		}
		slices.Sort(out)
		return out
	}
	cases := []struct {
		kid, alg string
		want     []string
	}{
		{"rsa", "RS256", []string{"rsa"}},
		{"rsa", "PS512", []string{"rsa"}},
		{"rsa", "ES256", nil},
		{"rsa", "HS256", nil},
		{"rsa-enc", "RS256", nil},
		{"rsa-oaep", "RS256", nil},
		{"oct", "HS256", nil},
		{"bad-x5c", "RS256", nil},
		{"weak", "RS256", nil},
		{"private", "RS256", nil},
		{"ed-private", "EdDSA", nil},
		{"ec", "ES256", []string{"ec"}},
		{"ec", "ES384", nil},
		{"ed", "EdDSA", []string{"ed"}},
		{"", "RS256", []string{"rsa"}},
		{"", "ES384", []string{""}},
		{"", "ES256", []string{"ec"}},
		{"", "ES512", nil},
		{"", "EdDSA", []string{"ed"}},
	}
	for _, tc := range cases {
		if got := kidsFor(tc.kid, tc.alg); !slices.Equal(got, tc.want) {
			t.Errorf("Key(%q, %s) = %v, want %v", tc.kid, tc.alg, got, tc.want)
		}
	}
	if !strings.Contains(logs.String(), "x5c") {
		t.Error("the unparsable x5c was not logged")
	}
	for _, secret := range []string{"0123456789abcdef", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"} {
		if strings.Contains(logs.String(), secret) {
			t.Error("symmetric key material was logged")
		}
	}
}

func TestKeySet_RefusesOversizedJWKS(t *testing.T) {
	big := []byte(`{"keys":[],"pad":"` + strings.Repeat("x", 1<<20) + `"}`)
	srv, _ := jwksServer(t, func() []byte { return big })
	sets := identity.NewKeySets(nil, identity.Hooks{})
	defer sets.Close()
	set := sets.Get("p", identity.KeySetOptions{Issuer: "https://issuer.example", JWKSURL: srv.URL})
	if err := set.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Fatalf("Refresh: %v", err)
	}
}

func TestKeySet_EmptyJWKSKeepsCachedKeys(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	var body atomic.Pointer[[]byte]
	good, _ := json.Marshal(map[string]any{"keys": []any{jwkJSON(t, &rsaKey.PublicKey, "k", "RS256", "sig", nil)}})
	body.Store(&good)
	srv, _ := jwksServer(t, func() []byte { return *body.Load() })
	sets := identity.NewKeySets(nil, identity.Hooks{})
	defer sets.Close()
	set := sets.Get("p", identity.KeySetOptions{Issuer: "https://issuer.example", JWKSURL: srv.URL})
	if err := set.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	empty := []byte(`{"keys":[]}`)
	body.Store(&empty)
	if err := set.Refresh(context.Background()); err == nil {
		t.Fatal("an empty JWKS was accepted")
	}
	if ks, err := set.Key(context.Background(), "k", "RS256"); err != nil || len(ks) != 1 {
		t.Fatalf("cached key lost: %v", err)
	}
}

func TestKeySet_TimeoutBoundsAFetch(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	sets := identity.NewKeySets(nil, identity.Hooks{})
	defer sets.Close()
	set := sets.Get("p", identity.KeySetOptions{Issuer: "https://issuer.example", JWKSURL: srv.URL, Timeout: 50 * time.Millisecond})
	start := time.Now()
	if err := set.Refresh(context.Background()); err == nil {
		t.Fatal("a hanging IdP answered")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Refresh took %v", d)
	}
}

func TestKeySet_RediscoversWhenJWKSMoves(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(map[string]any{"keys": []any{jwkJSON(t, &rsaKey.PublicKey, "k", "RS256", "sig", nil)}})
	var (
		moved    atomic.Bool
		requests sync.Map // path → *atomic.Int64
	)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := requests.LoadOrStore(r.URL.Path, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		current := "/keys-1"
		if moved.Load() {
			current = "/keys-2"
		}
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": srv.URL + current})
		case current:
			_, _ = w.Write(jwks)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	count := func(p string) int64 {
		n, ok := requests.Load(p)
		if !ok {
			return 0
		}
		return n.(*atomic.Int64).Load()
	}
	sets := identity.NewKeySets(nil, identity.Hooks{})
	defer sets.Close()
	set := sets.Get("p", identity.KeySetOptions{Issuer: srv.URL})
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := set.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if count("/.well-known/openid-configuration") != 1 || count("/keys-1") != 2 {
		t.Fatalf("the jwks_uri was not cached: %d discoveries, %d fetches",
			count("/.well-known/openid-configuration"), count("/keys-1"))
	}
	moved.Store(true)
	if err := set.Refresh(ctx); err != nil {
		t.Fatalf("after the JWKS moved: %v", err)
	}
	if count("/.well-known/openid-configuration") != 2 || count("/keys-2") != 1 {
		t.Fatalf("no rediscovery: %d discoveries, %d fetches of the new URL",
			count("/.well-known/openid-configuration"), count("/keys-2"))
	}
}

func TestKeySets_GetAppliesNewRootCAs(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(map[string]any{"keys": []any{jwkJSON(t, &rsaKey.PublicKey, "k", "RS256", "sig", nil)}})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwks) }))
	defer srv.Close()
	sets := identity.NewKeySets(nil, identity.Hooks{})
	defer sets.Close()
	opts := identity.KeySetOptions{Issuer: "https://issuer.example", JWKSURL: srv.URL, CAFile: "/etc/idp-ca.pem"}
	set := sets.Get("p", opts)
	if err := set.Refresh(context.Background()); err == nil {
		t.Fatal("an unknown CA was trusted")
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	opts.RootCAs = pool // the CA file's content changed; same path
	if again := sets.Get("p", opts); again != set {
		t.Fatal("a new set for the same key")
	}
	if err := set.Refresh(context.Background()); err != nil {
		t.Fatalf("with the new roots: %v", err)
	}
}

func TestKeySet_ReloadsDoNotPostponeBackgroundRefresh(t *testing.T) {
	clk := newClock()
	d := newIDP(t, clk, "")
	sets := identity.NewKeySets(nil, identity.Hooks{})
	defer sets.Close()
	opts := identity.KeySetOptions{Issuer: d.URL(), RefreshInterval: 100 * time.Millisecond}
	set := sets.Get("p", opts)
	if err := set.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := d.Requests("/jwks")
	// A reload every 10ms (each Get wakes the loop) must not keep the
	// 100ms refresh from happening. Bounded poll.
	deadline := time.Now().Add(5 * time.Second)
	for d.Requests("/jwks") == before {
		if time.Now().After(deadline) {
			t.Fatal("no background refresh while reloads kept coming")
		}
		sets.Get("p", opts)
		time.Sleep(10 * time.Millisecond)
	}
}
