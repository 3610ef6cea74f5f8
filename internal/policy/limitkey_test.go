package policy

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

func TestLimitKey(t *testing.T) {
	jwt := &identity.Principal{Credential: identity.CredentialJWT, Subject: "alice", Claims: map[string]any{"tenant": "acme", "org": map[string]any{"ids": []any{"a", "b"}}}}
	cases := []struct {
		name  string
		parts []KeyPart
		p     *identity.Principal
		hdr   map[string]string
		want  string
	}{
		{"consumer", []KeyPart{{Kind: KeyConsumer}}, consumer("partner"), nil, "partner"},
		{"no consumer falls back to the IP", []KeyPart{{Kind: KeyConsumer}}, jwt, nil, "\x00192.0.2.1"},
		{"anonymous subject falls back to the IP", []KeyPart{{Kind: KeySubject}}, nil, nil, "\x00192.0.2.1"},
		{"claim", []KeyPart{{Kind: KeyClaim, Arg: "tenant"}}, jwt, nil, "acme"},
		{"nested array claim", []KeyPart{{Kind: KeyClaim, Arg: "org.ids"}}, jwt, nil, "a,b"},
		{"header", []KeyPart{{Kind: KeyHeader, Arg: "X-Tenant"}}, nil, map[string]string{"X-Tenant": "t1"}, "t1"},
		{"missing header falls back", []KeyPart{{Kind: KeyHeader, Arg: "X-Tenant"}}, nil, nil, "\x00192.0.2.1"},
		{"ip", []KeyPart{{Kind: KeyIP}}, nil, nil, "192.0.2.1"},
		{"api", []KeyPart{{Kind: KeyAPI}}, nil, nil, "orders"},
		{"combination", []KeyPart{{Kind: KeyClaim, Arg: "tenant"}, {Kind: KeySubject}}, jwt, nil, "acme\x1falice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := LimitKey{Parts: tc.parts, API: "orders"}
			r := request("GET", "/", "192.0.2.1", tc.p, tc.hdr)
			if got := k.String(r, ExchangeFrom(r.Context()), tc.p); got != tc.want {
				t.Fatalf("key %q, want %q", got, tc.want)
			}
		})
	}
}

// Threat: a client sends a header value equal to another client's IP
// fallback key, to share (or exhaust) its bucket.
func TestLimitKey_FallbackCannotBeForged(t *testing.T) {
	k := LimitKey{Parts: []KeyPart{{Kind: KeyHeader, Arg: "X-Tenant"}}}
	victim := request("GET", "/", "192.0.2.1", nil, nil)
	forger := request("GET", "/", "198.51.100.7", nil, map[string]string{"X-Tenant": "192.0.2.1"})
	if k.String(victim, ExchangeFrom(victim.Context()), nil) == k.String(forger, ExchangeFrom(forger.Context()), nil) {
		t.Fatal("a header value equals the IP fallback key")
	}
}
