package gateway

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestUntrusted_SameAsReference: the first-byte shortcut changes no
// answer of untrustedName's, for every spoofable name and the prefixes in
// several spellings, common names, and random names built from their
// letters, under three identity prefixes.
func TestUntrusted_SameAsReference(t *testing.T) {
	names := []string{"", "X", "x-", "Accept", "User-Agent", "Authorization", "Te", "Trailer", "Forwardedx",
		"X-Forwarded-For", "x_forwarded_host", "X.Forwarded.Proto", "X-Forwarded", "X-Gatehouse-Subject",
		"x_gatehouse_groups", "My-Prefix-Id", "my.prefix.x", "X-Request-Id", "Traceparent"}
	for _, s := range spoofable {
		names = append(names, s, strings.ToUpper(s), strings.ReplaceAll(s, "-", "_"), strings.ReplaceAll(strings.ToUpper(s), "-", "."), s+"x", s[:len(s)-1])
	}
	r := rand.New(rand.NewPCG(1, 2))
	const letters = "xXfFtTmMaA-_.gorwd"
	for range 20000 {
		b := make([]byte, 1+r.IntN(22))
		for i := range b {
			b[i] = letters[r.IntN(len(letters))]
		}
		names = append(names, string(b))
	}
	for _, prefix := range []string{"x-gatehouse-", "my-prefix-", "t-"} {
		for _, k := range names {
			if got, want := untrusted(k, prefix), untrustedName(k, prefix); got != want {
				t.Errorf("untrusted(%q, %q) = %v, want %v", k, prefix, got, want)
			}
		}
	}
}
