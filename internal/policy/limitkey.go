package policy

import (
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// KeyPartKind is what one part of a rate-limit or quota key is made of.
type KeyPartKind uint8

// Key part kinds.
const (
	KeyConsumer KeyPartKind = iota + 1
	KeySubject
	KeyIP
	KeyAPI
	KeyClaim
	KeyHeader
)

// KeyPart is one part of a limit key: a kind and, for claims and headers,
// the claim path or the canonical header name.
type KeyPart struct {
	Kind KeyPartKind
	Arg  string
}

// LimitKey says what a rate limit or quota counts together. Its parts are
// joined in order. A part with no value in a request (no consumer, no such
// claim or header) is replaced by the client IP, marked so that it cannot
// equal a real value: a request is never left unlimited for lack of a key.
type LimitKey struct {
	Parts []KeyPart
	// API is the value of the api part.
	API string
}

const (
	keySep      = 0x1f // between parts
	keyFallback = 0x00 // starts a fallback (client IP) value
)

// Append appends the key of a request to b.
func (k *LimitKey) Append(b []byte, r *http.Request, x *Exchange, p *identity.Principal) []byte {
	for i, part := range k.Parts {
		if i > 0 {
			b = append(b, keySep)
		}
		n := len(b)
		switch part.Kind {
		case KeyConsumer:
			if p != nil {
				b = append(b, p.Consumer...)
			}
		case KeySubject:
			if p != nil {
				b = append(b, p.Subject...)
			}
		case KeyAPI:
			b = append(b, k.API...)
		case KeyClaim:
			if p != nil && p.Claims != nil {
				b = appendJoined(b, identity.ClaimValues(p.Claims, part.Arg))
			}
		case KeyHeader:
			b = appendJoined(b, r.Header[part.Arg])
		case KeyIP:
			b = appendIP(b, x)
			continue
		}
		if len(b) == n {
			b = append(b, keyFallback)
			b = appendIP(b, x)
		}
	}
	return b
}

func appendIP(b []byte, x *Exchange) []byte {
	if x == nil || !x.ClientIP.IsValid() {
		return append(b, "unknown"...)
	}
	return x.ClientIP.AppendTo(b)
}

func appendJoined(b []byte, vs []string) []byte {
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, v...)
	}
	return b
}

// String returns the key of a request as a string.
func (k *LimitKey) String(r *http.Request, x *Exchange, p *identity.Principal) string {
	var buf [128]byte
	return string(k.Append(buf[:0], r, x, p))
}
