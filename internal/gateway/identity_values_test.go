package gateway

import (
	"net/http"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/h1"
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
		"X-Gatehouse-Subject":    "alice%01",
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
	// Values built without lines go one by one as h1.Fields too, even
	// for a proxy whose prefix (empty here) is the lines' prefix they
	// leave empty.
	var fs h1.Fields
	p.setIdentity(nil, &fs, pr)
	if len(fs) != 5 || fs[0].Lines || fs[1].Name != "X-Gatehouse-Subject" {
		t.Errorf("values without lines: fields %+v, want the five one by one", fs)
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

// With h1.Fields, the identity goes as one Lines field: the lines of the
// fields the map path sets, in the same order, built once per principal.
// A principal whose lines were made for another prefix (a configuration
// reloaded with another identity prefix) gets the fields one by one.
func TestIdentityValues_Lines(t *testing.T) {
	names := func(pfx string) identityHeaderNames {
		return identityHeaderNames{subject: pfx + "Subject", issuer: pfx + "Issuer", groups: pfx + "Groups", roles: pfx + "Roles",
			scopes: pfx + "Scopes", consumer: pfx + "Consumer", credential: pfx + "Credential", prefix: pfx}
	}
	p := &proxyHandler{names: names("X-Gatehouse-")}
	pr := identity.NewStaticPrincipal(identity.CredentialJWT, "alice\x01", "", []string{"a,b", "c"}, nil, []string{"read", "write"})
	pr.Issuer = "https://idp.example"
	var fs h1.Fields
	p.setIdentity(nil, &fs, pr)
	want := "X-Gatehouse-Credential: jwt\r\nX-Gatehouse-Subject: alice%01\r\nX-Gatehouse-Issuer: https://idp.example\r\n" +
		"X-Gatehouse-Groups: a%2Cb,c\r\nX-Gatehouse-Scopes: read write\r\n"
	if len(fs) != 1 || !fs[0].Lines || !fs[0].Checked || fs[0].Name != "" || fs[0].Value != want {
		t.Fatalf("fields %+v, want one Checked Lines field %q", fs, want)
	}
	other := &proxyHandler{names: names("X-Id-")}

	// The fields one by one, as lines in setIdentity's order, are the
	// same: a principal whose lines were made by a proxy with another
	// prefix gets them so.
	var one h1.Fields
	pr2 := identity.NewStaticPrincipal(identity.CredentialJWT, "alice\x01", "", []string{"a,b", "c"}, nil, []string{"read", "write"})
	pr2.Issuer = pr.Issuer
	other.setIdentity(nil, new(h1.Fields), pr2) // pr2's lines are X-Id-'s
	p.setIdentity(nil, &one, pr2)
	var lines string
	for _, f := range one {
		if f.Lines {
			t.Fatalf("lines of another prefix sent: %+v", one)
		}
		lines += f.Name + ": " + f.Value + "\r\n"
	}
	if want != lines {
		t.Errorf("lines %q, fields one by one %q", want, lines)
	}

	fs = fs[:0]
	other.setIdentity(nil, &fs, pr) // pr's lines are X-Gatehouse-'s
	if len(fs) != 5 || fs[0].Lines || fs[1].Name != "X-Id-Subject" || fs[1].Value != "alice%01" {
		t.Errorf("another prefix: fields %+v, want the five fields one by one", fs)
	}

	if n := testing.AllocsPerRun(100, func() {
		fs = fs[:0]
		p.setIdentity(nil, &fs, pr)
	}); n != 0 {
		t.Fatalf("%v allocations per request, want 0", n)
	}
}

// Subjects that differ only by what a header cannot carry reach the
// backend as different values: control characters, '%' and a space at
// either end are percent-encoded; other values go as they are.
func TestIdentityValue_DistinctSubjectsStayDistinct(t *testing.T) {
	for in, want := range map[string]string{
		"admin":            "admin",
		"admin\x00":        "admin%00",
		" admin\t":         "%20admin%09",
		"admin\x7f":        "admin%7F",
		"admin\x1b":        "admin%1B",
		"admin%00":         "admin%2500",
		"a b":              "a b",
		"spiffe://x.org/b": "spiffe://x.org/b",
		"ünïcode":          "ünïcode",
		"admin\u00a0":      "admin%C2%A0",
		"\u3000admin":      "%E3%80%80admin",
		"a\u00a0b":         "a\u00a0b",
		"":                 "",
	} {
		if got := identityValue(in); got != want {
			t.Errorf("identityValue(%q) = %q, want %q", in, got, want)
		}
	}
}
