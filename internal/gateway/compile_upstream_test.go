package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

func TestCookieValue(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
		ok    bool
	}{
		{"only", []string{"sid=abc"}, "abc", true},
		{"among_others", []string{"a=1; sid=abc; b=2"}, "abc", true},
		{"second_header", []string{"a=1", "sid=xyz"}, "xyz", true},
		{"quoted", []string{`sid="q"`}, "q", true},
		{"prefix_is_not_a_match", []string{"sidx=1; xsid=2"}, "", false},
		{"empty_value", []string{"sid="}, "", false},
		{"first_wins", []string{"sid=1; sid=2"}, "1", true},
		{"absent", nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := cookieValue(tc.lines, "sid")
			if got != tc.want || ok != tc.ok {
				t.Fatalf("got %q %v, want %q %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func keyRequest(ip string, p *identity.Principal, hdr map[string]string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	x := &policy.Exchange{Record: &policy.Record{}}
	if ip != "" {
		x.ClientIP = netip.MustParseAddr(ip)
	}
	ctx := policy.WithExchange(context.Background(), x)
	if p != nil {
		ctx = policy.WithPrincipal(ctx, p)
	}
	return r.WithContext(ctx)
}

func TestAffinityKey_Sources(t *testing.T) {
	alice := &identity.Principal{Subject: "alice", Claims: map[string]any{"tenant": map[string]any{"id": "t1"}}}
	bob := &identity.Principal{Subject: "bob", Claims: map[string]any{"tenant": map[string]any{"id": "t1"}}}
	for _, tc := range []struct {
		key        string
		a, b       *http.Request
		same, hasA bool
	}{
		{"header:X-User", keyRequest("", nil, map[string]string{"X-User": "u1"}), keyRequest("", nil, map[string]string{"x-user": "u1"}), true, true},
		{"header:X-User", keyRequest("", nil, map[string]string{"X-User": "u1"}), keyRequest("", nil, map[string]string{"X-User": "u2"}), false, true},
		{"header:X-User", keyRequest("", nil, nil), keyRequest("", nil, nil), true, false},
		{"cookie:sid", keyRequest("", nil, map[string]string{"Cookie": "sid=1"}), keyRequest("", nil, map[string]string{"Cookie": "x=0; sid=1"}), true, true},
		{"client_ip", keyRequest("203.0.113.9", nil, nil), keyRequest("203.0.113.9", nil, nil), true, true},
		{"client_ip", keyRequest("203.0.113.9", nil, nil), keyRequest("203.0.113.10", nil, nil), false, true},
		{"subject", keyRequest("", alice, nil), keyRequest("", bob, nil), false, true},
		{"subject", keyRequest("", nil, nil), keyRequest("", nil, nil), true, false},
		{"claim:tenant.id", keyRequest("", alice, nil), keyRequest("", bob, nil), true, true},
	} {
		k, err := config.ParseHashKey(tc.key)
		if err != nil {
			t.Fatal(err)
		}
		f := affinityKey(k)
		ha, okA := f(tc.a)
		hb, okB := f(tc.b)
		if okA != tc.hasA {
			t.Errorf("%s: has key %v, want %v", tc.key, okA, tc.hasA)
		}
		if okA && okB && (ha == hb) != tc.same {
			t.Errorf("%s: same hash %v, want %v", tc.key, ha == hb, tc.same)
		}
	}
}

func BenchmarkAffinityKey(b *testing.B) {
	for _, key := range []string{"header:X-User", "cookie:sid", "client_ip", "subject"} {
		b.Run(key, func(b *testing.B) {
			k, _ := config.ParseHashKey(key)
			f := affinityKey(k)
			r := keyRequest("203.0.113.9", &identity.Principal{Subject: "alice"}, map[string]string{"X-User": "u1", "Cookie": "a=1; sid=abc"})
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := f(r); !ok {
					b.Fatal("no key")
				}
			}
		})
	}
}
