package gateway

import (
	"net/http"
	"sort"
)

// foldHeaderName lower-cases a header name and maps '_' and '.' to '-', so
// that the variants a backend framework may treat as one name compare
// equal (CGI-style servers turn X_Gatehouse_Subject and
// X-Gatehouse-Subject into the same variable).
func foldHeaderName(s string) string {
	b := make([]byte, len(s))
	for i := 0; i < len(s); i++ {
		b[i] = foldByte(s[i])
	}
	return string(b)
}

func foldByte(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + ('a' - 'A')
	case c == '_' || c == '.':
		return '-'
	}
	return c
}

// hasFoldPrefix reports whether name, folded, starts with the folded
// prefix, without allocating.
func hasFoldPrefix(name, foldedPrefix string) bool {
	if len(name) < len(foldedPrefix) {
		return false
	}
	for i := 0; i < len(foldedPrefix); i++ {
		if foldByte(name[i]) != foldedPrefix[i] {
			return false
		}
	}
	return true
}

func foldEqual(name, folded string) bool {
	return len(name) == len(folded) && hasFoldPrefix(name, folded)
}

// spoofable are headers that carry claims about the client or the
// original request. A client must not set them: the gateway sets the ones
// it vouches for after removing every incoming copy, in any spelling.
var spoofable = []string{
	"forwarded", "x-real-ip", "x-client-ip", "x-cluster-client-ip", "true-client-ip",
	"x-original-url", "x-original-uri", "x-original-host", "x-original-method",
	"x-rewrite-url", "x-http-method-override", "x-http-method", "x-method-override",
}

// stripUntrusted removes the gateway's identity headers (identityFold is
// the folded prefix, such as x-gatehouse-), every X-Forwarded-* header and
// the other spoofable headers, whatever their case or separators.
func stripUntrusted(h http.Header, identityFold string) {
	for k := range h {
		if untrusted(k, identityFold) {
			delete(h, k)
		}
	}
}

// untrusted reports whether a client must not set the field k: see
// stripUntrusted.
func untrusted(k, identityFold string) bool {
	// Every name it refuses starts with the identity prefix's first
	// letter, 'x' (X-Forwarded-* and most of spoofable), 'f' or 't': most
	// names are told apart by their first byte alone.
	if k != "" && identityFold != "" {
		switch c := foldByte(k[0]); c {
		case 'x', 'f', 't', identityFold[0]:
		default:
			return false
		}
	}
	return untrustedName(k, identityFold)
}

// untrustedName is untrusted without the first-byte shortcut.
func untrustedName(k, identityFold string) bool {
	if hasFoldPrefix(k, identityFold) || hasFoldPrefix(k, "x-forwarded-") {
		return true
	}
	for _, s := range spoofable {
		if foldEqual(k, s) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
