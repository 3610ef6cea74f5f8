package h1

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

// TestCanonicalizeName_SameAsBytes: the word-at-a-time canonicalizeName
// rewrites every name as the byte loop does: each byte value at each
// position of names of 1 to 24 bytes (its neighbours random, hyphens
// often), and 300,000 random names; and a valid name as net/http does.
func TestCanonicalizeName_SameAsBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const alphabet = "aAzZmM-0_@[`{\x80\xff\x7f.~"
	check := func(name []byte) {
		got, want := bytes.Clone(name), bytes.Clone(name)
		canonicalizeName(got)
		canonicalizeBytes(want)
		if !bytes.Equal(got, want) {
			t.Fatalf("%q: %q, want %q", name, got, want)
		}
	}
	for n := 1; n <= 24; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				name := make([]byte, n)
				for i := range name {
					name[i] = alphabet[r.IntN(len(alphabet))]
				}
				name[pos] = byte(c)
				check(name)
			}
		}
	}
	for range 300000 {
		name := make([]byte, 1+r.IntN(40))
		for i := range name {
			name[i] = alphabet[r.IntN(len(alphabet))]
		}
		check(name)
	}
	for _, name := range []string{"content-type", "X-FORWARDED-FOR", "x-a-b-c-d-e-f-g-h", "accept-encoding", "www-authenticate", "a", "---", "x--y"} {
		got := []byte(name)
		canonicalizeName(got)
		if want := textproto.CanonicalMIMEHeaderKey(name); string(got) != want {
			t.Errorf("%q: %q, net/http %q", name, got, want)
		}
	}
}

// TestIsHopByHop: the nine hop-by-hop names in any case, and no other
// name, not even one classify knows (Host, Content-Length, Expect).
func TestIsHopByHop(t *testing.T) {
	hop := []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}
	for _, name := range hop {
		for _, n := range []string{name, strings.ToLower(name), strings.ToUpper(name)} {
			if !IsHopByHop(n) {
				t.Errorf("%q is hop-by-hop", n)
			}
		}
	}
	for _, n := range []string{"", "Host", "Content-Length", "Expect", "Tf", "T", "Keep-Alivf", "Connectiom", "Proxy-Authorizatio", "X-Te", "Upgrades", "Content-Type"} {
		if IsHopByHop(n) {
			t.Errorf("%q is not hop-by-hop", n)
		}
	}
}

// TestRemoveHopByHop: the hop-by-hop fields go, and those a Connection
// field names in any case and spacing; the rest stays as it was.
func TestRemoveHopByHop(t *testing.T) {
	h := http.Header{
		"Connection":         {"X-Named,  x-other ", "close, Keep-Alive"},
		"X-Named":            {"1"},
		"X-Other":            {"2"},
		"Close":              {"3"},
		"Keep-Alive":         {"timeout=5"},
		"Te":                 {"trailers"},
		"Upgrade":            {"h2c"},
		"Proxy-Authenticate": {"Basic"},
		"X-Kept":             {"a", "b"},
		"Content-Type":       {"text/plain"},
	}
	RemoveHopByHop(h)
	want := http.Header{"X-Kept": {"a", "b"}, "Content-Type": {"text/plain"}}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Errorf("%v, want %v", h, want)
	}
}
