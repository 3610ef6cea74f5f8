package identity_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/devissuer"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

const audience = "api://orders"

// clock is a settable clock shared by the issuer, the verifier and the
// key sets' cooldown.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_750_000_000, 0).UTC()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuffer collects log output so tests can check that no token leaks.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// idp is a development issuer served on loopback.
type idp struct {
	*devissuer.Issuer
	srv *httptest.Server
}

func newIDP(t testing.TB, clk *clock, alg string) *idp {
	t.Helper()
	iss, err := devissuer.New(devissuer.Options{Algorithm: alg, Now: clk.Now, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(iss.Handler())
	t.Cleanup(srv.Close)
	iss.SetURL(srv.URL)
	return &idp{Issuer: iss, srv: srv}
}

// env is a verifier wired to one or more issuers.
type env struct {
	t     testing.TB
	clk   *clock
	logs  *logBuffer
	sets  *identity.KeySets
	idps  []*idp
	provs []*identity.Provider
	v     *identity.Verifier
	// fetches counts Hooks.OnFetch outcomes.
	mu      sync.Mutex
	fetches map[string]int
}

type envOptions struct {
	alg       string
	providers int // issuers configured (default 1)
	keyOpts   func(*identity.KeySetOptions)
	provOpts  func(*identity.ProviderOptions)
	verOpts   identity.VerifierOptions
	noRefresh bool
	// issuer, when set, is the first issuer's iss (instead of its
	// server's URL, which changes every run); its JWKS URL is then set
	// explicitly. Fuzz seeds use it to reach past the issuer check.
	issuer string
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, clk: newClock(), logs: &logBuffer{}, fetches: map[string]int{}}
	if o.providers == 0 {
		o.providers = 1
	}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.sets = identity.NewKeySetsWithClock(logger, identity.Hooks{OnFetch: func(_, outcome string) {
		e.mu.Lock()
		e.fetches[outcome]++
		e.mu.Unlock()
	}}, e.clk.Now)
	t.Cleanup(e.sets.Close)
	for n := 0; n < o.providers; n++ {
		d := newIDP(t, e.clk, o.alg)
		e.idps = append(e.idps, d)
		ko := identity.KeySetOptions{Issuer: d.URL()}
		if o.issuer != "" && n == 0 {
			jwks := d.srv.URL + "/jwks"
			d.SetURL(o.issuer)
			ko = identity.KeySetOptions{Issuer: o.issuer, JWKSURL: jwks}
		}
		if o.keyOpts != nil {
			o.keyOpts(&ko)
		}
		set := e.sets.Get("idp"+string(rune('A'+n)), ko)
		if !o.noRefresh {
			if err := set.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		po := identity.ProviderOptions{Name: "idp" + string(rune('A'+n)), Issuer: d.URL(), Audiences: []string{audience}}
		if o.alg != "" {
			po.Algorithms = []string{o.alg}
		}
		if o.provOpts != nil {
			o.provOpts(&po)
		}
		p, err := identity.NewProvider(po, set)
		if err != nil {
			t.Fatal(err)
		}
		e.provs = append(e.provs, p)
	}
	if o.verOpts.Now == nil {
		o.verOpts.Now = e.clk.Now
	}
	v, err := identity.NewVerifier(e.provs, o.verOpts)
	if err != nil {
		t.Fatal(err)
	}
	e.v = v
	return e
}

func (e *env) idp() *idp { return e.idps[0] }

func (e *env) fetchCount(outcome string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fetches[outcome]
}

// mint signs a valid access token for the first issuer, with extra claims.
func (e *env) mint(extra map[string]any) string {
	e.t.Helper()
	return e.mintWith(e.idp(), nil, extra)
}

func (e *env) mintWith(d *idp, hdr, extra map[string]any) string {
	e.t.Helper()
	claims := map[string]any{"sub": "alice", "aud": audience}
	for k, v := range extra {
		claims[k] = v
	}
	tok, err := d.MintWithHeader(hdr, claims)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) verify(token string) (*identity.Principal, error) {
	return e.v.Verify(context.Background(), token)
}

// wantReason fails unless err is an *identity.Error with reason r, whose
// messages do not contain the token.
func wantReason(t testing.TB, err error, r identity.Reason, token string) *identity.Error {
	t.Helper()
	var ie *identity.Error
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T), want *identity.Error with reason %s", err, err, r)
	}
	if ie.Reason != r {
		t.Fatalf("reason %s (%v), want %s", ie.Reason, err, r)
	}
	if token != "" {
		for _, part := range strings.Split(token, ".") {
			if len(part) > 8 && (strings.Contains(ie.Error(), part) || strings.Contains(ie.Detail, part)) {
				t.Fatalf("the error contains part of the token: %v", err)
			}
		}
	}
	return ie
}

// noTokenInLogs fails if any part of token was logged.
func (e *env) noTokenInLogs(token string) {
	e.t.Helper()
	logs := e.logs.String()
	for _, part := range strings.Split(token, ".") {
		if len(part) > 8 && strings.Contains(logs, part) {
			e.t.Fatalf("the logs contain part of the token")
		}
	}
}

// rawToken assembles a compact JWS from a header, claims and signature
// bytes, for tokens no signer would make (alg none, garbage signatures).
func rawToken(t testing.TB, hdr, claims map[string]any, sig []byte) string {
	t.Helper()
	h, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + enc.EncodeToString(sig)
}

// validClaims are the claims of a valid token of d at clk's now.
func validClaims(d *idp, clk *clock) map[string]any {
	now := clk.Now()
	return map[string]any{"iss": d.URL(), "sub": "alice", "aud": audience,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}
