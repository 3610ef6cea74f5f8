package h1

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"net/http"
	"unsafe"
)

// Parsing primitives shared by the request parser (server) and the
// response parser (transport). Everything here works on byte slices and
// allocates nothing.

// span is a half-open range [start, end) of a head's bytes.
type span struct{ start, end int32 }

func (s span) get(b []byte) []byte { return b[s.start:s.end] }
func (s span) str(h string) string { return h[s.start:s.end] }
func (s span) len() int            { return int(s.end - s.start) }

// field is one header field line: its name and its value with the
// surrounding optional whitespace removed.
type field struct{ name, value span }

// Character classes of RFC 9110 §5.6.2 (tchar) and §5.5 (field values).
var (
	tchar     = charTable("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
	hostChars = charTable("-._~!$&'()*+,;=:[]%0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
)

func charTable(s string) (t [256]bool) {
	for i := 0; i < len(s); i++ {
		t[s[i]] = true
	}
	return t
}

// isFieldValueByte reports whether c may appear in a field value:
// VCHAR, obs-text, SP and HTAB; never another control character.
func isFieldValueByte(c byte) bool {
	return c >= 0x20 && c != 0x7f || c == '\t'
}

// validFieldValue reports whether every byte of v is a field-value byte
// (isFieldValueByte), 32 bytes at a time, then 8: a long value such as a
// bearer token is checked in a fraction of the time of a byte loop. A
// block suspectWord flags (a byte below 0x20, which may be an allowed
// HTAB, a DEL, or rarely a valid byte) is decided byte by byte, and so is
// the rest from the first such 8-byte word, and the tail. A value of
// ctlBlocksMin bytes or more goes to skipValueBytes' scan, which has the
// processor's vector compare where there is one.
func validFieldValue(v []byte) bool {
	if haveCtlBlocks && len(v) >= ctlBlocksMin {
		for i := 0; ; i++ {
			i = skipValueBytes(v, i)
			if i == len(v) {
				return true
			}
			if !isFieldValueByte(v[i]) {
				return false
			}
		}
	}
	i := 0
	for ; i+32 <= len(v); i += 32 {
		w := v[i : i+32 : i+32]
		if (suspectBits(binary.LittleEndian.Uint64(w))|suspectBits(binary.LittleEndian.Uint64(w[8:]))|
			suspectBits(binary.LittleEndian.Uint64(w[16:]))|suspectBits(binary.LittleEndian.Uint64(w[24:])))&suspectHighs == 0 {
			continue
		}
		for _, c := range w {
			if !isFieldValueByte(c) {
				return false
			}
		}
	}
	for ; i+8 <= len(v); i += 8 {
		if suspectWord(binary.LittleEndian.Uint64(v[i:])) != 0 {
			break
		}
	}
	for _, c := range v[i:] {
		if !isFieldValueByte(c) {
			return false
		}
	}
	return true
}

// suspectWord is non-zero when one of x's eight bytes is below 0x20 or
// is 0x7f, and is zero when none is, except that a 0x7e byte after a
// 0xff byte (and any 0xfe bytes between them) is flagged too: the carry
// of the "has a byte of at least n" test. So its lowest flagged byte is a
// byte below 0x20, 0x7f, or such a 0x7e; a caller that needs the exact
// byte looks at it. Five operations: the classic "has a byte less than
// n" test (a borrow only flags bytes above one that is below n) and "has
// a byte of at least n" on x+1.
func suspectWord(x uint64) uint64 {
	return suspectBits(x) & suspectHighs
}

// suspectBits is suspectWord before its mask of the bytes' high bits
// (suspectHighs), which a block of words takes once for all of them.
func suspectBits(x uint64) uint64 {
	const ones = 0x0101010101010101
	return ((x - ones*0x20) | (x + ones)) &^ x
}

const suspectHighs = 0x8080808080808080

// ctlBlocksMin is the length from which skipValueBytes calls ctlBlocks:
// below it, the call costs more than the words it saves.
const ctlBlocksMin = 64

// skipValueBytes returns the index of the first byte of b from i on that
// suspectWord flags (see there: it is below 0x20 or 0x7f, unless it is a
// 0x7e after a 0xff or 0xfe byte), or len(b). Two words at a time first,
// since most values are short; then, for what is left of a long one (a
// bearer token, a cookie), the processor's vector compare where there is
// one (ctlBlocks: 32 bytes per compare with AVX2, 16 with SSE2, a
// quarter and a half of the instructions of the words), else 32 bytes at
// a time; then words and bytes.
func skipValueBytes(b []byte, i int) int {
	for n := 0; n < 2 && i+8 <= len(b); n++ {
		if m := suspectWord(binary.LittleEndian.Uint64(b[i : i+8 : i+8])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	if haveCtlBlocks && len(b)-i >= ctlBlocksMin {
		rest := b[i:]
		j := ctlBlocks(rest)
		if j < len(rest)&^15 {
			return i + j // a control byte or DEL: exact
		}
		i += j
	}
	for ; i+32 <= len(b); i += 32 {
		w := b[i : i+32 : i+32]
		if (suspectBits(binary.LittleEndian.Uint64(w))|suspectBits(binary.LittleEndian.Uint64(w[8:]))|
			suspectBits(binary.LittleEndian.Uint64(w[16:]))|suspectBits(binary.LittleEndian.Uint64(w[24:])))&suspectHighs != 0 {
			break
		}
	}
	for ; i+8 <= len(b); i += 8 {
		if m := suspectWord(binary.LittleEndian.Uint64(b[i : i+8 : i+8])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(b) && isFieldValueByte(b[i]) && b[i] != '\t' {
		i++
	}
	return i
}

// skipNameBytes returns the index of the first byte of b from i on that
// is not a tchar, or len(b). Eight bytes at a time while they are all
// letters and hyphens, as most of a field name's are (User-Agent,
// Content-Type): a name of ten bytes is then two words and a byte or two
// looked up in tchar, instead of ten lookups.
func skipNameBytes(b []byte, i int) int {
	for i+8 <= len(b) {
		if m := notLetterOrHyphen(binary.LittleEndian.Uint64(b[i : i+8 : i+8])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			break
		}
		i += 8
	}
	for i < len(b) && tchar[b[i]] {
		i++
	}
	return i
}

// notLetterOrHyphen has the high bit set of each of x's bytes that is not
// an ASCII letter or '-', and no other bit: exact for every byte, since
// no sum carries into the next byte (the tests are made on the low seven
// bits, and a byte with its high bit set is flagged apart).
func notLetterOrHyphen(x uint64) uint64 {
	const ones, highs, lows = 0x0101010101010101, 0x8080808080808080, 0x7f7f7f7f7f7f7f7f
	x7 := x & lows
	l := x7 | ones*0x20                                        // a letter is now 'a'..'z'
	letter := (l + ones*(0x80-'a')) &^ (l + ones*(0x80-'z'-1)) // 'a' <= l <= 'z'
	d := x7 ^ ones*'-'
	hyphen := ^((d + lows) | d) // d == 0
	return ^(letter|hyphen)&highs | x&highs
}

// validFieldValueString is validFieldValue for a string (read in place).
func validFieldValueString(v string) bool {
	return validFieldValue(unsafe.Slice(unsafe.StringData(v), len(v)))
}

// Errors of the field parser; each names what was wrong.
var (
	errBareLF          = errors.New("line ending is a bare LF")
	errObsFold         = errors.New("obsolete line folding")
	errSpaceBeforeColn = errors.New("whitespace between field name and colon")
	errFieldName       = errors.New("invalid character in field name")
	errNoColon         = errors.New("field line without a colon")
	errFieldValue      = errors.New("control character in field value")
	errHeadTooLarge    = errors.New("header block too large")
)

// parseField parses one field line (without its CRLF) starting at offset
// base of the head. It refuses obs-fold, whitespace before the colon,
// non-token name characters and control characters in the value.
func parseField(line []byte, base int) (field, error) {
	if len(line) == 0 {
		return field{}, errNoColon
	}
	if line[0] == ' ' || line[0] == '\t' {
		return field{}, errObsFold
	}
	colon := -1
	for i := 0; i < len(line); i++ {
		c := line[i]
		if tchar[c] {
			continue
		}
		if c == ':' {
			colon = i
			break
		}
		if c == ' ' || c == '\t' {
			return field{}, errSpaceBeforeColn
		}
		return field{}, errFieldName
	}
	if colon <= 0 {
		if colon == 0 {
			return field{}, errFieldName
		}
		return field{}, errNoColon
	}
	vs, ve := colon+1, len(line)
	for vs < ve && (line[vs] == ' ' || line[vs] == '\t') {
		vs++
	}
	for ve > vs && (line[ve-1] == ' ' || line[ve-1] == '\t') {
		ve--
	}
	if !validFieldValue(line[vs:ve]) {
		return field{}, errFieldValue
	}
	return field{
		name:  span{int32(base), int32(base + colon)},
		value: span{int32(base + vs), int32(base + ve)},
	}, nil
}

// errIncompleteLine is parseFieldLine's answer when b ends before the
// line does.
var errIncompleteLine = errors.New("incomplete field line")

// parseFieldLine parses the field line starting at offset off of a head b
// and returns it with the offset of the next line: what nextLine and
// parseField do, in one pass over the line instead of three (finding its
// LF, checking the name, checking the value). The value is scanned a
// word at a time for the first byte below 0x20 or DEL: an HTAB goes on,
// the CR of the line's CRLF ends it, anything else is refused
// (skipValueBytes). The errors are parseField's and nextLine's, and
// errIncompleteLine when b ends within the line.
func parseFieldLine(b []byte, off int) (f field, next int, err error) {
	i := off
	if i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		return field{}, 0, errObsFold
	}
	i = skipNameBytes(b, i)
	if i == len(b) {
		return field{}, 0, errIncompleteLine
	}
	switch c := b[i]; {
	case c == ':':
		if i == off {
			return field{}, 0, errFieldName
		}
	case c == ' ' || c == '\t':
		return field{}, 0, errSpaceBeforeColn
	case c == '\n':
		return field{}, 0, errBareLF
	case c == '\r' && i+1 == len(b):
		return field{}, 0, errIncompleteLine
	case c == '\r' && b[i+1] == '\n':
		return field{}, 0, errNoColon
	default:
		return field{}, 0, errFieldName
	}
	colon := i
	vs := colon + 1
	for vs < len(b) && (b[vs] == ' ' || b[vs] == '\t') {
		vs++
	}
	j := vs
	for {
		j = skipValueBytes(b, j)
		if j == len(b) {
			return field{}, 0, errIncompleteLine
		}
		if !isFieldValueByte(b[j]) {
			break
		}
		j++ // an HTAB, or a 0x7e suspectWord flagged
	}
	switch {
	case b[j] == '\n':
		return field{}, 0, errBareLF
	case b[j] != '\r':
		return field{}, 0, errFieldValue
	case j+1 == len(b):
		return field{}, 0, errIncompleteLine
	case b[j+1] != '\n':
		return field{}, 0, errFieldValue
	}
	ve := j
	for ve > vs && (b[ve-1] == ' ' || b[ve-1] == '\t') {
		ve--
	}
	return field{name: span{int32(off), int32(colon)}, value: span{int32(vs), int32(ve)}}, j + 2, nil
}

// nextLine returns the end of the line starting at off in b (the index
// of its CR) and the offset of the next line. ok is false when b holds no
// complete line yet. A LF not preceded by CR is an error.
func nextLine(b []byte, off int) (end, next int, ok bool, err error) {
	i := bytes.IndexByte(b[off:], '\n')
	if i < 0 {
		return 0, 0, false, nil
	}
	lf := off + i
	if lf == off || b[lf-1] != '\r' {
		return 0, 0, false, errBareLF
	}
	return lf - 1, lf + 1, true, nil
}

var errEmptyStart = errors.New("empty start line")

// findHeadEnd looks for the end of a head (the first empty line) in b,
// checking the lines from offset scan on. It returns the head's length, or
// 0 and the offset up to which lines were checked when the head is not
// complete yet. A bare LF, or an empty first line, is an error.
func findHeadEnd(b []byte, scan int) (n, next int, err error) {
	for {
		end, nx, ok, err := nextLine(b, scan)
		if err != nil {
			return 0, 0, err
		}
		if !ok {
			return 0, scan, nil
		}
		if end == scan {
			if scan == 0 {
				return 0, 0, errEmptyStart
			}
			return nx, nx, nil
		}
		scan = nx
	}
}

// equalFoldLower reports whether b equals lower (which must be lower-case
// ASCII) ignoring ASCII case.
func equalFoldLower(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length value: one or more digits and
// nothing else, at most 18 of them so that it cannot overflow.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// eachToken calls fn for each comma-separated element of a list value,
// trimmed of optional whitespace; empty elements are skipped.
func eachToken(b []byte, fn func(tok []byte)) {
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != ',' {
			i++
		}
		tok := b[:i]
		for len(tok) > 0 && (tok[0] == ' ' || tok[0] == '\t') {
			tok = tok[1:]
		}
		for len(tok) > 0 && (tok[len(tok)-1] == ' ' || tok[len(tok)-1] == '\t') {
			tok = tok[:len(tok)-1]
		}
		if len(tok) > 0 {
			fn(tok)
		}
		if i == len(b) {
			return
		}
		b = b[i+1:]
	}
}

// canonicalizeName rewrites a valid field name in place in the canonical
// form of net/http (textproto.CanonicalMIMEHeaderKey): upper case at the
// start and after each hyphen, lower case elsewhere. A name of eight
// bytes or more goes a word at a time, its last word read again in part
// (canonicalizing a byte twice changes nothing).
func canonicalizeName(b []byte) {
	n := len(b)
	if n < 8 {
		canonicalizeBytes(b)
		return
	}
	start := uint64(0x80) // the first byte starts a word
	for i := 0; i+8 < n; i += 8 {
		var x uint64
		x, start = canonicalWord(binary.LittleEndian.Uint64(b[i:i+8:i+8]), start)
		binary.LittleEndian.PutUint64(b[i:i+8:i+8], x)
	}
	start = 0
	if n == 8 || b[n-9] == '-' {
		start = 0x80
	}
	x, _ := canonicalWord(binary.LittleEndian.Uint64(b[n-8:]), start)
	binary.LittleEndian.PutUint64(b[n-8:], x)
}

// canonicalizeBytes is canonicalizeName a byte at a time.
func canonicalizeBytes(b []byte) {
	upper := true
	for i, c := range b {
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		} else if !upper && 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
}

// canonicalWord canonicalizes the eight bytes of x (the first in the
// lowest byte); start is 0x80 when the first byte starts a word (the
// name's first, or one after a hyphen). It returns the word and whether
// the next byte starts a word (0x80) or not (0). Per byte, with its high
// bit set (no borrow can cross into the next byte): c&0x7f >= 'A' and
// not >= 'Z'+1 with c < 0x80 is an upper-case letter; likewise lower
// case; the "has a zero byte" test, exact, finds hyphens.
func canonicalWord(x, start uint64) (uint64, uint64) {
	const ones, highs, low7 = 0x0101010101010101, 0x8080808080808080, 0x7f7f7f7f7f7f7f7f
	hx := x | highs
	upper := (hx - ones*'A') &^ (hx - ones*('Z'+1)) &^ x & highs
	lower := (hx - ones*'a') &^ (hx - ones*('z'+1)) &^ x & highs
	d := x ^ ones*'-'
	hyphen := ^((d&low7 + low7) | d) & highs
	starts := hyphen<<8 | start
	return x - (lower&starts)>>2 + (upper&^starts)>>2, hyphen >> 56
}

// fieldKind classifies the field names that change how a message is
// framed or handled; every other name is kindOther.
type fieldKind uint8

const (
	kindOther fieldKind = iota
	kindHost
	kindContentLength
	kindTransferEncoding
	kindConnection
	kindExpect
	kindUpgrade
	kindTrailer
	// kindHopByHop is one of the other hop-by-hop fields a proxy removes
	// (RFC 9110 §7.6.1 and RFC 2616's list): Keep-Alive,
	// Proxy-Connection, Proxy-Authenticate, Proxy-Authorization and Te.
	kindHopByHop
	kindDropped // a field the server removes from the request
)

// classify tells the names of fieldKind apart, in any case: a switch on
// the length, then one comparison or two (a loop over a table of names
// by length measured about 130 instructions more per request).
func classify(name []byte) fieldKind {
	switch len(name) {
	case 2:
		if equalFoldLower(name, "te") {
			return kindHopByHop
		}
	case 4:
		if equalFoldLower(name, "host") {
			return kindHost
		}
	case 6:
		if equalFoldLower(name, "expect") {
			return kindExpect
		}
	case 7:
		if equalFoldLower(name, "upgrade") {
			return kindUpgrade
		}
		if equalFoldLower(name, "trailer") {
			return kindTrailer
		}
	case 10:
		if equalFoldLower(name, "connection") {
			return kindConnection
		}
		if equalFoldLower(name, "keep-alive") {
			return kindHopByHop
		}
	case 14:
		if equalFoldLower(name, "content-length") {
			return kindContentLength
		}
	case 16:
		if equalFoldLower(name, "proxy-connection") {
			return kindHopByHop
		}
	case 17:
		if equalFoldLower(name, "transfer-encoding") {
			return kindTransferEncoding
		}
	case 18:
		if equalFoldLower(name, "proxy-authenticate") {
			return kindHopByHop
		}
	case 19:
		if equalFoldLower(name, "proxy-authorization") {
			return kindHopByHop
		}
	}
	return kindOther
}

// IsHopByHop reports whether a field name, in any case, is one of the
// hop-by-hop fields a proxy does not forward (RFC 9110 §7.6.1 and RFC
// 2616's list): Connection, Keep-Alive, Proxy-Connection,
// Proxy-Authenticate, Proxy-Authorization, Te, Trailer,
// Transfer-Encoding, Upgrade.
func IsHopByHop(name string) bool {
	return hopByHopKinds&(1<<classify(unsafe.Slice(unsafe.StringData(name), len(name)))) != 0
}

// hopByHopKinds are the kinds of the hop-by-hop fields.
const hopByHopKinds = 1<<kindConnection | 1<<kindUpgrade | 1<<kindTrailer | 1<<kindTransferEncoding | 1<<kindHopByHop

// makeHeader builds the header map of a head whose field names were
// canonicalized in place; s is the head as one string, so that every name
// and value is a substring of it. Fields whose kind is in the bit set drop
// are left out. All values share one backing array: vals when it is long
// enough.
func makeHeader(s string, fields []field, kinds []fieldKind, drop uint32, vals []string) http.Header {
	h, _ := fillHeader(make(http.Header, keptFields(kinds, drop)), s, fields, kinds, drop, vals)
	return h
}

// keptFields is the number of fields whose kind is not in drop: a map
// sized for them is sized for the fields kept (a request whose only field
// is Host gets an empty map, whose slots are allocated at the first field
// a handler sets, if any).
func keptFields(kinds []fieldKind, drop uint32) int {
	kept := 0
	for _, k := range kinds {
		if drop&(1<<k) == 0 {
			kept++
		}
	}
	return kept
}

// fillHeader is makeHeader with hdr, empty, as the map. It also returns
// the NameBit of every name it put in the map, ORed.
func fillHeader(hdr http.Header, s string, fields []field, kinds []fieldKind, drop uint32, vals []string) (http.Header, uint64) {
	if len(vals) < len(fields) {
		vals = make([]string, len(fields))
	}
	j := 0
	var seen uint64 // NameBit of each name kept so far
	for i, f := range fields {
		if drop&(1<<kinds[i]) != 0 {
			continue
		}
		key, v := f.name.str(s), f.value.str(s)
		// Is the name repeated? Not if its NameBit is new: most names
		// are told so without a look at the others. Otherwise, for a
		// head of a few fields, comparing lengths and then bytes costs
		// less than a lookup in the map (about 95 instructions); beyond
		// that, the comparisons would grow with the square of the fields.
		var dup bool
		if bit := NameBit(key); seen&bit == 0 {
			seen |= bit
		} else if i <= 16 {
			dup = repeated(s, fields[:i], kinds, drop, f.name)
		} else {
			_, dup = hdr[key]
		}
		if dup {
			hdr[key] = append(hdr[key], v)
			continue
		}
		vals[j] = v
		hdr[key] = vals[j : j+1 : j+1]
		j++
	}
	return hdr, seen
}

// NameBit is one of 64 bits, by a name's length, first and last bytes:
// two names with different bits differ (any two may share one). A header
// whose names' bits do not include a name's lacks that name: see the
// server's ResponseWriter's HeaderNames. The weights are chosen so that
// the names a proxy looks for (User-Agent, Authorization, X-Api-Key, Te,
// Connection, Upgrade, the X-Forwarded ones, X-Request-Id, Traceparent)
// have bits of their own, apart from each other's and from those of the
// fields browsers send (TestNameBit): a lookup the bit lets through is
// then most often a hit.
func NameBit(name string) uint64 {
	if name == "" {
		return 1
	}
	return 1 << ((uint(len(name))*3 + uint(name[len(name)-1]) + uint(name[0])*10) & 63)
}

// repeated reports whether a field of before whose kind is not in drop
// has the name name (all in s).
func repeated(s string, before []field, kinds []fieldKind, drop uint32, name span) bool {
	n := name.str(s)
	for i, f := range before {
		if f.name.len() == len(n) && drop&(1<<kinds[i]) == 0 && f.name.str(s) == n {
			return true
		}
	}
	return false
}
