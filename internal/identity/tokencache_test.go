package identity_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

func TestVerifyCache_KeyRemovedStopsCachedToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	d := e.idp()
	tok := e.mint(nil)
	p1, err := e.verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := e.verify(tok)
	if err != nil || p1 != p2 {
		t.Fatalf("second verify: %v (same principal: %v)", err, p1 == p2)
	}
	if err := d.RotateKey(); err != nil {
		t.Fatal(err)
	}
	d.RetireOldKeys()
	if err := e.provs[0].KeySet().Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err = e.verify(tok)
	wantReason(t, err, identity.ReasonUnknownKey, tok)
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
