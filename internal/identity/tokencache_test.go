package identity_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// TestVerifyCache_KeysRefreshed refreshes the issuer's keys under a cached
// token: the same keys again, a new key beside its own, its key gone; and
// under a second token, its key replaced at once by another. A token stays
// cached while its key is there, whatever else changed, and no longer.
func TestVerifyCache_KeysRefreshed(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.idp()
	tok := e.mint(nil)
	p1, err := e.verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	refresh := func() {
		t.Helper()
		if err := e.provs[0].KeySet().Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	refresh() // the same keys
	if p, err := e.verify(tok); err != nil || p != p1 {
		t.Fatalf("after a refresh with the same keys: %v (the cached principal: %v)", err, p == p1)
	}
	if err := d.RotateKey(); err != nil {
		t.Fatal(err)
	}
	refresh() // the token's key and a new one
	for range 2 {
		if p, err := e.verify(tok); err != nil || p != p1 {
			t.Fatalf("after a new key came beside the token's: %v (the cached principal: %v)", err, p == p1)
		}
	}
	d.RetireOldKeys()
	refresh() // the new key alone
	_, err = e.verify(tok)
	wantReason(t, err, identity.ReasonUnknownKey, tok)

	tok2 := e.mint(nil) // signed with the new key
	p2, err := e.verify(tok2)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := e.verify(tok2); err != nil || p != p2 {
		t.Fatalf("second verify: %v (the cached principal: %v)", err, p == p2)
	}
	if err := d.RotateKey(); err != nil {
		t.Fatal(err)
	}
	d.RetireOldKeys()
	refresh() // another key alone
	_, err = e.verify(tok2)
	wantReason(t, err, identity.ReasonUnknownKey, tok2)
}

func TestVerifyCache_FailuresAreNotCached(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.mint(map[string]any{"nbf": e.clk.Now().Add(time.Hour).Unix()})
	_, err := e.verify(tok)
	wantReason(t, err, identity.ReasonNotYetValid, tok)
	e.clk.Advance(time.Hour)
	if _, err := e.verify(tok); err != nil {
		t.Fatalf("once valid: %v", err)
	}
}

func TestVerifyCache_Bounded(t *testing.T) {
	e := newEnv(t, envOptions{verOpts: identity.VerifierOptions{CacheSize: 4}})
	var toks []string
	for i := 0; i < 20; i++ {
		tok := e.mint(map[string]any{"jti": string(rune('a' + i))})
		if _, err := e.verify(tok); err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	for _, tok := range toks { // evicted or not, each still verifies
		if _, err := e.verify(tok); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVerifyCache_ForgedTokenWithCachedSignature: a token built on a
// cached token's signature (the same end, so the same cache slot) with
// another payload of the same length is refused, every time, and the
// cached token keeps verifying as its own principal.
func TestVerifyCache_ForgedTokenWithCachedSignature(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.mint(map[string]any{"sub": "alice"})
	p1, err := e.verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	other := e.mint(map[string]any{"sub": "bobby"})
	forged := other[:strings.LastIndexByte(other, '.')] + tok[strings.LastIndexByte(tok, '.'):]
	if len(forged) != len(tok) || forged == tok {
		t.Fatalf("the forged token should differ from the cached one at the same length")
	}
	for range 3 {
		_, err := e.verify(forged)
		wantReason(t, err, identity.ReasonBadSignature, forged)
		p2, err := e.verify(tok)
		if err != nil || p2 != p1 {
			t.Fatalf("the cached token: %v (the cached principal: %v)", err, p2 == p1)
		}
	}
}

// TestVerifier_Cached: Cached answers from the cache alone, what Verify
// answered before, and nothing for a token not verified, nor once it has
// expired (Verify then says why).
func TestVerifier_Cached(t *testing.T) {
	e := newEnv(t, envOptions{})
	exp := e.clk.Now().Add(time.Minute)
	tok := e.mint(map[string]any{"sub": "alice", "exp": exp.Unix()})
	if p, ok := e.v.Cached(tok, time.Time{}); ok || p != nil {
		t.Fatalf("Cached before any Verify: %v, %v", p, ok)
	}
	p, err := e.verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := e.v.Cached(tok, time.Time{}); !ok || got != p {
		t.Fatalf("Cached after Verify: %v, %v; want the verified principal", got, ok)
	}
	other := byte('A')
	if tok[len(tok)-1] == other {
		other = 'B'
	}
	if _, ok := e.v.Cached(tok[:len(tok)-1]+string(other), time.Time{}); ok {
		t.Error("Cached a token that differs in its last byte")
	}
	if _, ok := e.v.Cached("", time.Time{}); ok {
		t.Error("Cached the empty token")
	}
	// The bearer step skips its white-space checks for a cached token:
	// that holds because a token with white space in it does not verify.
	for _, ws := range []string{" ", "\t"} {
		for _, at := range []int{1, strings.IndexByte(tok, '.') + 1, len(tok) - 1} {
			spaced := tok[:at] + ws + tok[at:]
			if _, err := e.verify(spaced); err == nil {
				t.Errorf("a token with %q at %d verified", ws, at)
			}
			if _, ok := e.v.Cached(spaced, time.Time{}); ok {
				t.Errorf("a token with %q at %d is cached", ws, at)
			}
		}
	}
	e.clk.Advance(time.Minute + identity.DefaultClockSkew + time.Second)
	if _, ok := e.v.Cached(tok, time.Time{}); ok {
		t.Error("Cached an expired token")
	}
	_, err = e.verify(tok)
	wantReason(t, err, identity.ReasonExpired, tok)
	var nilV *identity.Verifier
	if _, ok := nilV.Cached(tok, time.Time{}); ok {
		t.Error("a nil Verifier cached something")
	}
}

// TestVerifier_CachedAtArrival: a verifier on the system clock checks a
// cached token's expiry against the request's arrival, when it is given
// one; a verifier with a clock of its own reads that clock.
func TestVerifier_CachedAtArrival(t *testing.T) {
	e := newEnv(t, envOptions{})
	system, err := identity.NewVerifier(e.provs, identity.VerifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Minute).Truncate(time.Second)
	tok := e.mint(map[string]any{"sub": "alice", "exp": exp.Unix()})
	p, err := system.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	late := exp.Add(identity.DefaultClockSkew + time.Second)
	for _, c := range []struct {
		name    string
		arrived time.Time
		want    bool
	}{
		{"not known", time.Time{}, true},
		{"now", time.Now(), true},
		{"just before the expiry and skew", exp.Add(identity.DefaultClockSkew - time.Second), true},
		{"past the expiry and skew", late, false},
	} {
		if got, ok := system.Cached(tok, c.arrived); ok != c.want || ok && got != p {
			t.Errorf("arrived %s: cached %v (the verified principal: %v), want %v", c.name, ok, got == p, c.want)
		}
	}
	// e.v reads e's clock, at 2025-06-15; the token expires a minute
	// from now (exp is checked, not iat): an arrival past exp is not
	// what it goes by.
	if _, err := e.verify(tok); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.v.Cached(tok, late); !ok {
		t.Error("a verifier with a clock of its own went by the arrival")
	}
}
