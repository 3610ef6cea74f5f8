package gateway

import (
	"strings"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

// PathOptions tune path normalization.
type PathOptions struct {
	AllowSemicolon bool
	KeepSlashes    bool
}

// normalizePath turns the path of a request target into the one path that
// is matched, authorized and forwarded. It decodes percent-escapes once and
// then:
//
//   - rejects (400) an encoded slash (%2F) or backslash (%5C) inside a
//     segment, a raw backslash, NUL and other control characters, invalid
//     percent-encoding, bytes that are not UTF-8 after decoding (overlong
//     encodings included), a segment that still holds a percent-encoding
//     once decoded (%252e: double encoding), and ';' unless allowed;
//   - resolves "." and ".." segments, also when encoded as %2e, and rejects
//     a ".." that would climb above the root;
//   - merges repeated slashes unless KeepSlashes is set.
//
// It returns the decoded path and its canonical escaped form, which is what
// the backend receives, so the backend decodes exactly the path that was
// authorized. Paths that need no change are returned as they are, without
// allocating.
func normalizePath(raw string, o PathOptions) (decoded, escaped string, err *policy.Error) {
	if raw == "" || raw[0] != '/' {
		return "", "", policy.BadRequest("bad_path", "The request path must start with '/'.")
	}
	if isCanonicalPath(raw, o) {
		return raw, raw, nil
	}
	return normalizeSlow(raw, o)
}

// isCanonicalPath reports whether raw needs no decoding or resolution.
func isCanonicalPath(raw string, o PathOptions) bool {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if pathPlain[c] {
			continue // most of a path's bytes: one look each
		}
		switch c {
		case '/':
			if i+1 < len(raw) {
				n := raw[i+1]
				if (n == '/' && !o.KeepSlashes) || n == '.' {
					return false
				}
			}
		case ';':
			if !o.AllowSemicolon {
				return false
			}
		default:
			return false // '%', '\\', '#', controls, non-ASCII, and what else is not pathSafe
		}
	}
	return true
}

// pathPlain marks the pathSafe bytes but ';': those isCanonicalPath
// passes without a look at the options or the next byte.
var pathPlain = func() (t [256]bool) {
	t = pathSafe
	t[';'] = false
	return t
}()

// pathSafe marks the bytes that may appear unescaped in a canonical path
// segment: RFC 3986 unreserved, sub-delims, ':' and '@'.
var pathSafe = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~!$&'()*+,;=:@" {
		t[c] = true
	}
	return t
}()

func normalizeSlow(raw string, o PathOptions) (string, string, *policy.Error) {
	trailing := strings.HasSuffix(raw, "/") && len(raw) > 1
	var segs []string
	rest := raw[1:]
	for {
		var seg string
		i := strings.IndexByte(rest, '/')
		last := i < 0
		if last {
			seg = rest
		} else {
			seg, rest = rest[:i], rest[i+1:]
		}
		d, perr := decodeSegment(seg, o)
		if perr != nil {
			return "", "", perr
		}
		switch d {
		case ".":
			if last {
				trailing = true
			}
		case "..":
			if len(segs) == 0 {
				return "", "", policy.BadRequest("bad_path", "The request path climbs above the root.")
			}
			segs = segs[:len(segs)-1]
			if last {
				trailing = true
			}
		case "":
			if o.KeepSlashes && !last {
				segs = append(segs, "")
			}
		default:
			segs = append(segs, d)
		}
		if last {
			break
		}
	}
	var dec, esc strings.Builder
	dec.Grow(len(raw))
	esc.Grow(len(raw) + 8)
	for _, s := range segs {
		dec.WriteByte('/')
		dec.WriteString(s)
		esc.WriteByte('/')
		escapeSegment(&esc, s)
	}
	if trailing || len(segs) == 0 {
		dec.WriteByte('/')
		esc.WriteByte('/')
	}
	return dec.String(), esc.String(), nil
}

// decodeSegment percent-decodes one segment and checks what it decodes to.
func decodeSegment(seg string, o PathOptions) (string, *policy.Error) {
	if !strings.ContainsRune(seg, '%') {
		if err := checkDecoded(seg, o); err != nil {
			return "", err
		}
		return seg, nil
	}
	b := make([]byte, 0, len(seg))
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(seg) || !isHex(seg[i+1]) || !isHex(seg[i+2]) {
			return "", policy.BadRequest("bad_path", "The request path has an invalid percent-encoding.")
		}
		d := unhex(seg[i+1])<<4 | unhex(seg[i+2])
		if d == '/' {
			return "", policy.BadRequest("bad_path", "The request path has an encoded slash (%2F) inside a segment.")
		}
		b = append(b, d)
		i += 2
	}
	s := string(b)
	if err := checkDecoded(s, o); err != nil {
		return "", err
	}
	if hasEscape(s) {
		// %252e decodes to %2e: a backend that decodes twice would see
		// a dot, slash or letter the gateway never matched.
		return "", policy.BadRequest("bad_path", "The request path is percent-encoded twice.")
	}
	return s, nil
}

// hasEscape reports whether s holds a '%' followed by two hex digits.
func hasEscape(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2]) {
			return true
		}
	}
	return false
}

func checkDecoded(s string, o PathOptions) *policy.Error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			return policy.BadRequest("bad_path", "The request path has a backslash.")
		case c < 0x20 || c == 0x7f:
			return policy.BadRequest("bad_path", "The request path has a control character.")
		case c == ';' && !o.AllowSemicolon:
			return policy.BadRequest("bad_path", "The request path has a ';', which this gateway does not accept.")
		case c == '#':
			return policy.BadRequest("bad_path", "The request path has a '#'.")
		case c == '?':
			// Only reachable encoded (%3F): a backend that decodes before
			// splitting off the query would see a shorter path.
			return policy.BadRequest("bad_path", "The request path has an encoded '?'.")
		}
	}
	if !utf8.ValidString(s) {
		return policy.BadRequest("bad_path", "The request path is not valid UTF-8 once decoded.")
	}
	return nil
}

func escapeSegment(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if pathSafe[c] {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
