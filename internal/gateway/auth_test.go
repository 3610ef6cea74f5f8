package gateway_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Each case is a credential the gateway must refuse with 401 before the
// backend is reached.
func TestAuth_BadTokensAreRefusedBeforeTheBackend(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	now := time.Now()
	other := newHarness(t, baseConfig, nil) // issuer B: its own keys and URL

	cases := []struct {
		name   string
		token  func() string
		reason string
	}{
		{"expired", func() string {
			return h.token(map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()})
		}, "expired"},
		{"not_yet_valid", func() string { return h.token(map[string]any{"nbf": now.Add(time.Hour).Unix()}) }, "not_yet_valid"},
		{"wrong_iss", func() string { return h.token(map[string]any{"iss": "https://evil.example.com"}) }, "unknown_issuer"},
		{"wrong_aud", func() string { return h.token(map[string]any{"aud": "someone-else"}) }, "wrong_audience"},
		{"alg_none", func() string {
			tok := h.token(nil)
			parts := strings.Split(tok, ".")
			hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`))
			return hdr + "." + parts[1] + "."
		}, ""},
		{"unknown_kid", func() string {
			tok, _ := h.issuer.MintWithHeader(map[string]any{"kid": "no-such-key"}, map[string]any{"sub": "a", "aud": "gatehouse", "scope": "orders:read"})
			return tok
		}, ""},
		{"issuer_b_token", func() string { return other.token(nil) }, "unknown_issuer"},
		{"issuer_b_key_claiming_a", func() string {
			return other.token(map[string]any{"iss": h.issSrv.URL})
		}, ""},
		{"oversized", func() string {
			return h.token(map[string]any{"padding": strings.Repeat("x", 9000)})
		}, "too_large"},
		{"garbage", func() string { return "not.a.jwt" }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := h.backend.count()
			res := h.do("GET", "/orders/1", bearer(tc.token()), nil)
			res.Body.Close()
			if res.StatusCode != 401 {
				t.Fatalf("status %d, want 401", res.StatusCode)
			}
			ch := res.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, "Bearer") || !strings.Contains(ch, `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q", ch)
			}
			if h.backend.count() != before {
				t.Fatal("the backend was reached")
			}
			if tc.reason != "" && !strings.Contains(h.logs.String(), "invalid_token:"+tc.reason) {
				t.Errorf("access log lacks denial invalid_token:%s", tc.reason)
			}
		})
	}
}

func TestAuth_Authorization(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	// Missing scope: 403 naming the scope, RFC 6750 insufficient_scope.
	res := h.do("GET", "/orders/1", bearer(h.token(map[string]any{"scope": "profile"})), nil)
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Fatalf("missing scope: %d", res.StatusCode)
	}
	if ch := res.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="orders:read"`) {
		t.Errorf("WWW-Authenticate %q", ch)
	}
	// Missing group on DELETE (operation-level requirement replaces the API's).
	res = h.do("DELETE", "/orders/1", bearer(h.token(nil)), nil)
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Fatalf("missing group: %d", res.StatusCode)
	}
	res = h.do("DELETE", "/orders/1", bearer(h.token(map[string]any{"groups": []string{"admins"}, "scope": nil})), nil)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("admin delete: %d", res.StatusCode)
	}
	// API keys are not accepted on DELETE.
	res = h.do("DELETE", "/orders/1", map[string]string{"X-API-Key": testAPIKey}, nil)
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("api key on a jwt-only operation: %d", res.StatusCode)
	}
	// A wrong API key is a 401, never a fall-through.
	res = h.do("GET", "/orders/1", map[string]string{"X-API-Key": "ghk_wrong"}, nil)
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("wrong api key: %d", res.StatusCode)
	}
	// No credentials at all: both challenges.
	res = h.do("GET", "/orders/1", nil, nil)
	res.Body.Close()
	if got := res.Header.Values("WWW-Authenticate"); len(got) != 2 || got[0] != `Bearer realm="gatehouse"` {
		t.Errorf("challenges %q", got)
	}
	// Basic auth is not a bearer token: treated as no credential.
	res = h.do("GET", "/orders/1", map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}, nil)
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("basic auth: %d", res.StatusCode)
	}
	// "Bearer" with nothing after it is a malformed request (RFC 6750 §3.1).
	res = h.do("GET", "/orders/1", map[string]string{"Authorization": "Bearer "}, nil)
	res.Body.Close()
	if res.StatusCode != 400 && res.StatusCode != 401 {
		t.Fatalf("empty bearer: %d", res.StatusCode)
	}
}

func TestAuth_KeyRotationAndIdPOutage(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	old := h.token(nil)
	if err := h.issuer.RotateKey(); err != nil {
		t.Fatal(err)
	}
	fresh := h.token(nil) // signed with a kid the gateway has not seen
	res := h.do("GET", "/orders/1", bearer(fresh), nil)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("token with the rotated key: %d (no restart should be needed)", res.StatusCode)
	}
	h.issuer.SetDown(true)
	for _, tok := range []string{old, fresh} {
		res := h.do("GET", "/orders/1", bearer(tok), nil)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("IdP down: cached keys should still verify, got %d", res.StatusCode)
		}
	}
}

// Threat: random kids make the gateway hammer the IdP.
func TestAuth_RandomKidFloodFetchesAtMostOncePerCooldown(t *testing.T) {
	// A cooldown longer than the test, however slow the machine is.
	h := newHarness(t, strings.Replace(baseConfig, "jwks: {cooldown: 1s}", "jwks: {cooldown: 10m}", 1), nil)
	fetchesBefore := h.issuer.Requests("/jwks")
	start := time.Now()
	var wg sync.WaitGroup
	var non401 atomic.Int32
	for g := range 20 {
		wg.Go(func() {
			for i := range 10 {
				tok, _ := h.issuer.MintWithHeader(map[string]any{"kid": strings.Repeat("k", g+1) + string(rune('a'+i))},
					map[string]any{"sub": "a", "aud": "gatehouse", "scope": "orders:read"})
				res := h.do("GET", "/orders/1", bearer(tok), nil)
				res.Body.Close()
				if res.StatusCode != 401 {
					non401.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if non401.Load() != 0 {
		t.Fatalf("%d requests were not refused", non401.Load())
	}
	// The cooldown is 1s of real time (the harness's key sets use the wall
	// clock): on a slow machine the flood may span more than one.
	allowed := 1 + int(time.Since(start)/time.Second)
	if n := h.issuer.Requests("/jwks") - fetchesBefore; n > allowed {
		t.Fatalf("200 unknown kids in %v caused %d JWKS fetches, want ≤ %d (one per 1s cooldown)", time.Since(start), n, allowed)
	}
}

func TestReload_InvalidConfigKeepsServing(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	v1 := h.gw.Snapshot().Version
	diags := h.load(strings.Replace(baseConfig, "backend: be\n    max_body", "backend: nope\n    max_body", 1))
	if diags == nil {
		t.Fatal("a config with a dangling reference was accepted")
	}
	if h.gw.Snapshot().Version != v1 {
		t.Fatal("the snapshot changed")
	}
	res := h.do("GET", "/public/x", nil, nil)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("after a refused reload: %d", res.StatusCode)
	}
}

// A reload swaps the snapshot while requests are in flight; none fails.
func TestReload_UnderLoadLosesNothing(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	tok := h.token(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var failed, total atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			client := h.srv.Client()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/orders/1", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				res, err := client.Do(req)
				if ctx.Err() != nil {
					return
				}
				total.Add(1)
				if err != nil || res.StatusCode != 200 {
					failed.Add(1)
				}
				if res != nil {
					res.Body.Close()
				}
			}
		})
	}
	for i := range 20 {
		cfg := baseConfig + "\n# reload " + strings.Repeat(" ", i) + "\n"
		if i%2 == 1 {
			cfg = strings.Replace(baseConfig, "max_body: 1KiB", "max_body: 2KiB", 1)
		}
		if diags := h.load(cfg); diags != nil {
			t.Fatal(diags)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if failed.Load() != 0 || total.Load() == 0 {
		t.Fatalf("%d of %d requests failed during reloads", failed.Load(), total.Load())
	}
	t.Logf("%d requests, 20 reloads, 0 failures", total.Load())
}

// Fault: the IdP's JWKS endpoint goes down. Tokens signed with cached
// keys keep working; a flood of tokens with random kids (which would each
// ask for a refetch) causes at most one IdP request per cooldown (1s
// here), all refused with 401, none reaching the backend.
func TestFault_JWKSDownCachedKeysServeAndKidFloodIsThrottled(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	good := h.token(nil)
	h.issuer.SetDown(true)
	before := h.issuer.Requests("/jwks")
	start := time.Now()
	var wg sync.WaitGroup
	var ok, refused, other atomic.Int32
	backendBefore := h.backend.count()
	for g := range 10 {
		wg.Go(func() {
			for i := range 30 {
				if i%3 == 0 {
					res := h.do("GET", "/orders/1", bearer(good), nil)
					res.Body.Close()
					if res.StatusCode == 200 {
						ok.Add(1)
					} else {
						other.Add(1)
					}
					continue
				}
				tok, _ := h.issuer.MintWithHeader(map[string]any{"kid": "random-" + strings.Repeat("x", g) + string(rune('a'+i))},
					map[string]any{"sub": "a", "aud": "gatehouse", "scope": "orders:read"})
				res := h.do("GET", "/orders/1", bearer(tok), nil)
				res.Body.Close()
				if res.StatusCode == 401 {
					refused.Add(1)
				} else {
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Each fetch attempt GETs /jwks once (then rediscovers). Attempts come
	// from unknown kids, at most one per 1s cooldown, and from the
	// background retry after a failure, at most one per second (backoff
	// 1s, 2s, 4s…); the flood must add nothing beyond that.
	fetches := h.issuer.Requests("/jwks") - before
	allowed := 2 * (1 + int(elapsed/time.Second))
	t.Logf("FIGURE JWKS down: %d cached-key requests served, %d random-kid requests refused, %d other; %d JWKS fetch attempts in %v (allowed %d)",
		ok.Load(), refused.Load(), other.Load(), fetches, elapsed.Round(time.Millisecond), allowed)
	if other.Load() != 0 {
		t.Errorf("%d requests got an unexpected status", other.Load())
	}
	if fetches > allowed {
		t.Errorf("%d JWKS fetch attempts in %v, want at most %d", fetches, elapsed, allowed)
	}
	if n := h.backend.count() - backendBefore; n != int(ok.Load()) {
		t.Errorf("the backend got %d requests, %d were authorized", n, ok.Load())
	}
}
