package config

import (
	"fmt"
	"strings"
)

// KeyPartKind is what one part of a rate-limit or quota key is made of.
type KeyPartKind uint8

// Key part kinds.
const (
	KeyConsumer KeyPartKind = iota + 1 // the API-key consumer
	KeySubject                         // the principal's subject
	KeyIP                              // the trusted client IP
	KeyAPI                             // the API name: one bucket for every caller
	KeyClaim                           // a token claim (claim:tenant)
	KeyHeader                          // a request header (header:X-Tenant)
)

// KeyPart is one parsed part of a key.
type KeyPart struct {
	Kind KeyPartKind
	Arg  string // claim path or header name
}

// ParseKeyPart parses consumer, subject, ip, api, claim:PATH or header:NAME.
func ParseKeyPart(s string) (KeyPart, error) {
	switch s {
	case "consumer":
		return KeyPart{Kind: KeyConsumer}, nil
	case "subject":
		return KeyPart{Kind: KeySubject}, nil
	case "ip":
		return KeyPart{Kind: KeyIP}, nil
	case "api":
		return KeyPart{Kind: KeyAPI}, nil
	}
	kind, arg, ok := strings.Cut(s, ":")
	switch {
	case ok && kind == "claim":
		if !validClaimPath(arg) {
			return KeyPart{}, fmt.Errorf("invalid claim path %q in key part %q", arg, s)
		}
		return KeyPart{Kind: KeyClaim, Arg: arg}, nil
	case ok && kind == "header":
		if !headerNameRE.MatchString(arg) {
			return KeyPart{}, fmt.Errorf("invalid header name %q in key part %q", arg, s)
		}
		return KeyPart{Kind: KeyHeader, Arg: arg}, nil
	}
	return KeyPart{}, fmt.Errorf("unknown key part %q (known: consumer, subject, ip, api, claim:PATH, header:NAME)", s)
}

// EffectiveKey returns a limit's key, or the default key.
func EffectiveKey(key []string) []string {
	if len(key) == 0 {
		return DefaultLimitKey
	}
	return key
}

// KeySpec is the canonical text of a key, used to identify a limit's state.
func KeySpec(key []string) string {
	return strings.Join(EffectiveKey(key), "+")
}
