package gateway

import (
	"net/http"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// The forwarded identity values are built once per principal and shared
// by its requests, without spare capacity that appends would share.
func TestIdentityValues_BuiltOnceAndNotShared(t *testing.T) {
	pr := identity.NewStaticPrincipal(identity.CredentialJWT, "alice\x01", "", []string{"a,b", "c"}, nil, []string{"read", "write"})
	pr.Issuer = "https://idp.example"
	builds := 0
	build := func(p *identity.Principal) *identity.HeaderValues {
		builds++
		return identityValues(p)
	}
	p := &proxyHandler{names: identityHeaderNames{
		subject: "X-Gatehouse-Subject", issuer: "X-Gatehouse-Issuer", groups: "X-Gatehouse-Groups",
		roles: "X-Gatehouse-Roles", scopes: "X-Gatehouse-Scopes", consumer: "X-Gatehouse-Consumer", credential: "X-Gatehouse-Credential",
	}}
	pr.HeaderValues(build)
	pr.HeaderValues(build)
	if builds != 1 {
		t.Fatalf("built %d times, want once", builds)
	}
	want := map[string]string{
		"X-Gatehouse-Credential": "jwt",
		"X-Gatehouse-Subject":    "alice",
		"X-Gatehouse-Issuer":     "https://idp.example",
		"X-Gatehouse-Groups":     "a%2Cb,c",
		"X-Gatehouse-Scopes":     "read write",
	}
	for range 2 {
		h := http.Header{}
		p.setIdentity(h, nil, pr)
		for k, v := range want {
			if got := h[k]; len(got) != 1 || got[0] != v {
				t.Fatalf("%s = %q, want [%q]", k, got, v)
			}
		}
		if _, ok := h["X-Gatehouse-Roles"]; ok {
			t.Fatal("roles set for a principal without roles")
		}
		if _, ok := h["X-Gatehouse-Consumer"]; ok {
			t.Fatal("consumer set for a JWT principal")
		}
		// The slices are shared by every request of the principal: with
		// spare capacity, two requests appending to one field would write
		// into the same array.
		for k, vs := range h {
			if cap(vs) != len(vs) {
				t.Fatalf("%s: shared slice with spare capacity (len %d, cap %d)", k, len(vs), cap(vs))
			}
		}
	}
}

func TestIdentityValues_NoAllocationPerRequest(t *testing.T) {
	pr := identity.NewStaticPrincipal(identity.CredentialJWT, "alice", "", []string{"g1", "g2"}, []string{"r"}, []string{"read"})
	p := &proxyHandler{names: identityHeaderNames{
		subject: "S", issuer: "I", groups: "G", roles: "R", scopes: "Sc", consumer: "C", credential: "Cr",
	}}
	h := make(http.Header, 16)
	p.setIdentity(h, nil, pr) // builds the values
	if n := testing.AllocsPerRun(100, func() {
		clear(h)
		p.setIdentity(h, nil, pr)
	}); n != 0 {
		t.Fatalf("%v allocations per request, want 0", n)
	}
}
