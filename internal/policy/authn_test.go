package policy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

type fakeTokens map[string]*identity.Principal

func (f fakeTokens) Verify(_ context.Context, tok string) (*identity.Principal, error) {
	if p, ok := f[tok]; ok {
		return p, nil
	}
	if tok == "down" {
		return nil, &identity.Error{Reason: identity.ReasonIssuerUnavailable, Detail: "down"}
	}
	return nil, &identity.Error{Reason: identity.ReasonExpired, Detail: "The access token expired."}
}

type fakeKeys map[string]*identity.Principal

func (f fakeKeys) Lookup(k string) (*identity.Principal, bool) { p, ok := f[k]; return p, ok }

func TestAuthenticate(t *testing.T) {
	alice := &identity.Principal{Credential: identity.CredentialJWT, Subject: "alice", Provider: "corp"}
	bob := &identity.Principal{Credential: identity.CredentialJWT, Subject: "bob", Provider: "other"}
	acme := identity.NewStaticPrincipal(identity.CredentialAPIKey, "acme", "acme", nil, nil, nil)
	opts := AuthnOptions{
		Accept:       []identity.Credential{identity.CredentialJWT, identity.CredentialAPIKey},
		Providers:    []string{"corp"},
		Tokens:       fakeTokens{"good": alice, "bob": bob},
		Keys:         fakeKeys{"k1": acme},
		APIKeyHeader: "X-Api-Key", APIKeyHeaderName: "X-API-Key", Realm: "gatehouse",
	}
	tests := []struct {
		name    string
		headers map[string][]string
		status  int
		reason  string
		subject string
	}{
		{"valid token", map[string][]string{"Authorization": {"Bearer good"}}, 0, "", "alice"},
		{"scheme is case-insensitive", map[string][]string{"Authorization": {"bearer good"}}, 0, "", "alice"},
		{"valid key", map[string][]string{"X-Api-Key": {"k1"}}, 0, "", "acme"},
		{"nothing", nil, 401, "missing_credentials", ""},
		{"expired token", map[string][]string{"Authorization": {"Bearer old"}}, 401, "invalid_token:expired", ""},
		{"invalid token does not fall through to a valid key", map[string][]string{"Authorization": {"Bearer old"}, "X-Api-Key": {"k1"}}, 401, "invalid_token:expired", ""},
		{"issuer not accepted here", map[string][]string{"Authorization": {"Bearer bob"}}, 401, "invalid_token:issuer_not_accepted", ""},
		{"issuer unavailable", map[string][]string{"Authorization": {"Bearer down"}}, 503, "issuer_unavailable", ""},
		{"unknown key", map[string][]string{"X-Api-Key": {"nope"}}, 401, "invalid_api_key", ""},
		{"two keys", map[string][]string{"X-Api-Key": {"k1", "k1"}}, 400, "invalid_request:duplicate_api_key", ""},
		{"two authorization headers", map[string][]string{"Authorization": {"Bearer good", "Bearer good"}}, 400, "invalid_request:duplicate_authorization", ""},
		{"empty bearer", map[string][]string{"Authorization": {"Bearer "}}, 400, "invalid_request:malformed_bearer", ""},
		{"bearer with a space inside", map[string][]string{"Authorization": {"Bearer go od"}}, 400, "invalid_request:malformed_bearer", ""},
		{"bearer with a tab inside", map[string][]string{"Authorization": {"Bearer go\tod"}}, 400, "invalid_request:malformed_bearer", ""},
		{"basic is not a bearer", map[string][]string{"Authorization": {"Basic eDp5"}}, 401, "missing_credentials", ""},
	}
	var observed []string
	opts.Observe = func(r string) { observed = append(observed, r) }
	step := Authenticate(opts)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *identity.Principal
			h := step(HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				got = PrincipalFrom(r.Context())
				return nil
			}))
			r := httptest.NewRequest("GET", "/", nil)
			for k, v := range tt.headers {
				r.Header[k] = v
			}
			err := h.ServeHTTP(httptest.NewRecorder(), r)
			if tt.status == 0 {
				if err != nil || got == nil || got.Subject != tt.subject {
					t.Fatalf("err=%v principal=%v", err, got)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Status != tt.status || pe.Reason != tt.reason {
				t.Fatalf("got %v, want %d %s", err, tt.status, tt.reason)
			}
			if got != nil {
				t.Fatal("the next handler ran")
			}
			if tt.status == 401 && len(pe.Header.Values("WWW-Authenticate")) != 2 {
				t.Errorf("challenges %q", pe.Header.Values("WWW-Authenticate"))
			}
		})
	}
	if len(observed) != len(tests)-3 {
		t.Errorf("observed %d failures, want %d", len(observed), len(tests)-3)
	}
}

func TestLimitBody(t *testing.T) {
	h := LimitBody(10)(HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil }))
	r := httptest.NewRequest("POST", "/", nil)
	r.ContentLength = 11
	if pe := AsError(h.ServeHTTP(httptest.NewRecorder(), r)); pe.Status != 413 {
		t.Fatalf("status %d", pe.Status)
	}
}

// Under the gateway (an exchange with a record in the context) the
// principal is recorded in the exchange, where PrincipalFrom finds it, and
// the request is passed on as it is: no context value, no copy.
func TestAuthenticate_RecordsPrincipalInExchange(t *testing.T) {
	alice := &identity.Principal{Credential: identity.CredentialJWT, Subject: "alice", Provider: "corp"}
	step := Authenticate(AuthnOptions{
		Accept: []identity.Credential{identity.CredentialJWT},
		Tokens: fakeTokens{"good": alice}, Realm: "gatehouse",
	})
	x := &Exchange{Record: &Record{}}
	r := httptest.NewRequest("GET", "/", nil)
	r = r.WithContext(WithExchange(r.Context(), x))
	r.Header.Set("Authorization", "Bearer good")
	var gotReq *http.Request
	var got *identity.Principal
	err := step(HandlerFunc(func(w http.ResponseWriter, in *http.Request) error {
		gotReq, got = in, PrincipalFrom(in.Context())
		return nil
	})).ServeHTTP(httptest.NewRecorder(), r)
	if err != nil {
		t.Fatal(err)
	}
	if got != alice || x.Record.Principal != alice {
		t.Fatalf("PrincipalFrom = %v, record = %v; want alice in both", got, x.Record.Principal)
	}
	if gotReq != r {
		t.Error("the request was copied; under the gateway it is passed on as it is")
	}
	if PrincipalFrom(WithExchange(context.Background(), &Exchange{Record: &Record{}})) != nil {
		t.Error("an exchange without a principal reports one")
	}
}

// The verifier answers from its cache: a change to either side of
// CachedTokens must not quietly turn that off.
var _ CachedTokens = (*identity.Verifier)(nil)

// cachingTokens is fakeTokens with a cache of verified tokens, counting
// the calls of Verify.
type cachingTokens struct {
	fakeTokens
	cache    map[string]*identity.Principal
	verifies int
	arrived  time.Time // what the last Cached was given
}

func (c *cachingTokens) Verify(ctx context.Context, tok string) (*identity.Principal, error) {
	c.verifies++
	return c.fakeTokens.Verify(ctx, tok)
}

func (c *cachingTokens) Cached(tok string, arrived time.Time) (*identity.Principal, bool) {
	c.arrived = arrived
	p, ok := c.cache[tok]
	return p, ok
}

// TestAuthenticate_CachedTokens: a token the verifier's cache holds is
// accepted without Verify, still only from an accepted issuer; one it
// does not hold goes through the syntax checks and Verify as before.
func TestAuthenticate_CachedTokens(t *testing.T) {
	alice := &identity.Principal{Credential: identity.CredentialJWT, Subject: "alice", Provider: "corp"}
	bob := &identity.Principal{Credential: identity.CredentialJWT, Subject: "bob", Provider: "other"}
	tokens := &cachingTokens{fakeTokens: fakeTokens{"fresh": alice}, cache: map[string]*identity.Principal{"cached": alice, "bobs": bob}}
	step := Authenticate(AuthnOptions{
		Accept: []identity.Credential{identity.CredentialJWT}, Providers: []string{"corp"},
		Tokens: tokens, Realm: "gatehouse",
	})
	for _, tc := range []struct {
		auth     string
		status   int
		reason   string
		verifies int
	}{
		{"Bearer cached", 0, "", 0},
		{"Bearer  cached ", 0, "", 0},
		{"Bearer bobs", 401, "invalid_token:issuer_not_accepted", 0},
		{"Bearer fresh", 0, "", 1},
		{"Bearer cach ed", 400, "invalid_request:malformed_bearer", 0},
		{"Bearer old", 401, "invalid_token:expired", 1},
	} {
		tokens.verifies = 0
		r := request("GET", "/", "192.0.2.1", nil, map[string]string{"Authorization": tc.auth})
		arrived := t0.Add(time.Duration(len(tc.auth)) * time.Second)
		ExchangeFrom(r.Context()).Start = arrived
		var got *identity.Principal
		err := step(HandlerFunc(func(w http.ResponseWriter, in *http.Request) error {
			got = PrincipalFrom(in.Context())
			return nil
		})).ServeHTTP(httptest.NewRecorder(), r)
		status, reason := 0, ""
		if err != nil {
			pe := AsError(err)
			status, reason = pe.Status, pe.Reason
		}
		if status != tc.status || reason != tc.reason || tokens.verifies != tc.verifies {
			t.Errorf("%q: status %d %q, %d calls of Verify; want %d %q, %d", tc.auth, status, reason, tokens.verifies, tc.status, tc.reason, tc.verifies)
		}
		if tc.status == 0 && got != alice {
			t.Errorf("%q: principal %v, want alice", tc.auth, got)
		}
		if !tokens.arrived.Equal(arrived) {
			t.Errorf("%q: the cache was asked at %v, not at the request's arrival %v", tc.auth, tokens.arrived, arrived)
		}
	}
}
