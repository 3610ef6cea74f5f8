package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"hash/maphash"
	"strconv"
	"unicode/utf8"
)

// checkJSONBody finds in a JSON body what kin-openapi's decoder lets
// through: it decodes the first JSON value and ignores what follows, and
// keeps the last of an object's members with the same name (a backend
// that keeps the first sees a value that was not validated).
// Out-of-range numbers (1e400) are refused too: they pass an OpenAPI 3.1
// schema as infinities.
//
// It returns the first problem in the body as a violation, and bad false
// when there is none, or when the body is not valid JSON up to the end of
// its first value (validation reports that). It reads the body once, in
// time linear in its length, and allocates nothing for a body of small
// objects (up to linearKeys members, 64 names open at a time) whose
// names have no escapes, nested at most 16 deep.
func checkJSONBody(body []byte) (v Violation, bad bool) {
	// The scan's state is local (with its first frames and names on the
	// stack): stored through a pointer, it would be allocated.
	var frameBuf [16]jsonFrame
	var keyBuf [64][]byte
	stack, keys := frameBuf[:0], keyBuf[:0]
	var seed maphash.Seed
	report := func(p Violation) {
		if !bad {
			v, bad = p, true
		}
	}
	pos, ok := 0, true
value: // A value starts at pos.
	for ok {
		pos = skipSpace(body, pos)
		if pos >= len(body) {
			ok = false
			break
		}
		switch c := body[pos]; {
		case c == '{' || c == '[':
			if len(stack) >= maxJSONDepth {
				ok = false
				break value
			}
			pos = skipSpace(body, pos+1)
			if pos < len(body) && body[pos] == c+2 { // '{'+2 is '}', '['+2 is ']': empty
				pos++
				break
			}
			if c == '{' {
				stack = append(stack, jsonFrame{object: true, keys: len(keys)})
				pos, keys, ok = member(body, pos, stack, keys, &seed, bad, report)
			} else {
				stack = append(stack, jsonFrame{})
			}
			continue value
		case c == '"':
			pos, _, ok = scanString(body, pos)
		case c == '-' || '0' <= c && c <= '9':
			start := pos
			var magnitude int
			pos, magnitude, ok = scanNumber(body, pos)
			// A number under 10^300 is in range (float64 goes to
			// 1.8e308); one that rounds to zero is not an error.
			if ok && magnitude > 300 && !bad {
				tok := body[start:pos]
				if _, err := strconv.ParseFloat(string(tok), 64); errors.Is(err, strconv.ErrRange) {
					report(Violation{In: "body", Field: pointer(stack), Message: numberText(tok) + " is out of the range of a number"})
				}
			}
		case c == 't':
			pos, ok = scanLiteral(body, pos, "true")
		case c == 'f':
			pos, ok = scanLiteral(body, pos, "false")
		case c == 'n':
			pos, ok = scanLiteral(body, pos, "null")
		default:
			ok = false
		}
		if !ok {
			break
		}
		// A value ended: close the objects and arrays that end with it,
		// up to the one where another value follows.
		for {
			if len(stack) == 0 {
				break value
			}
			pos = skipSpace(body, pos)
			if pos >= len(body) {
				ok = false
				break value
			}
			top := &stack[len(stack)-1]
			c := body[pos]
			pos++
			switch {
			case c == ',' && top.object:
				pos, keys, ok = member(body, skipSpace(body, pos), stack, keys, &seed, bad, report)
				continue value
			case c == ',':
				top.index++
				continue value
			case top.object && c == '}' || !top.object && c == ']':
				if top.object {
					keys = keys[:top.keys]
				}
				stack = stack[:len(stack)-1]
			default:
				ok = false
				break value
			}
		}
	}
	if !ok {
		return Violation{}, false
	}
	if pos = skipSpace(body, pos); pos < len(body) {
		report(Violation{In: "body", Message: "unexpected data after the JSON value at byte " + strconv.Itoa(pos) + "; the body must be one JSON value"})
	}
	return v, bad
}

// linearKeys is the number of an object's members compared one by one
// with each new one; over it, the object's member names are hashed.
const linearKeys = 16

// maxJSONDepth is encoding/json's limit on nesting: validation refuses a
// body nested deeper.
const maxJSONDepth = 10000

// jsonFrame is an object or array open in checkJSONBody.
type jsonFrame struct {
	object bool
	// index is an array's current element.
	index int
	// keys is where the object's member names start in checkJSONBody's
	// keys; key is the current member's name.
	keys int
	key  []byte
	// hashed maps the hashes of the member names of an object with
	// more than linearKeys members to their index in keys.
	hashed map[uint64]int
}

// member scans an object member's name, at pos, and the colon after it.
// It adds the name to keys and reports a name the object (the top of
// stack) already has, unless a problem was reported before.
func member(body []byte, pos int, stack []jsonFrame, keys [][]byte, seed *maphash.Seed, reported bool, report func(Violation)) (int, [][]byte, bool) {
	if pos >= len(body) || body[pos] != '"' {
		return pos, keys, false
	}
	start := pos
	pos, plain, ok := scanString(body, pos)
	if !ok {
		return pos, keys, false
	}
	key := body[start+1 : pos-1]
	if !plain && (bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key)) {
		// The name as encoding/json decodes it: escapes resolved,
		// invalid UTF-8 replaced.
		var name string
		if err := json.Unmarshal(body[start:pos], &name); err != nil {
			return pos, keys, false
		}
		key = []byte(name)
	}
	top := &stack[len(stack)-1]
	top.key = key
	if !reported {
		var dup bool
		if keys, dup = addName(keys, top, key, seed); dup {
			report(Violation{In: "body", Field: pointer(stack), Message: "property " + strconv.Quote(string(key)) + " is given more than once (names are compared regardless of case, as Go's, .NET's and other decoders match them)"})
		}
	}
	pos = skipSpace(body, pos)
	if pos >= len(body) || body[pos] != ':' {
		return pos, keys, false
	}
	return pos + 1, keys, true
}

// addName adds key to the names of the object top, the last in keys, and
// reports whether the object already has it. Names are compared
// regardless of case: Go's encoding/json, .NET's web defaults and Jackson
// with case-insensitive properties bind "Quantity" to quantity, so a body
// with both would be validated with one value and read with the other.
func addName(keys [][]byte, top *jsonFrame, key []byte, seed *maphash.Seed) ([][]byte, bool) {
	names := keys[top.keys:]
	if top.hashed == nil && len(names) < linearKeys {
		for _, k := range names {
			if bytes.EqualFold(k, key) {
				return keys, true
			}
		}
		return append(keys, key), false
	}
	if top.hashed == nil {
		*seed = maphash.MakeSeed()
		top.hashed = make(map[uint64]int, 2*linearKeys)
		for i, k := range names {
			top.hashed[foldHash(*seed, k)] = top.keys + i
		}
	}
	h := foldHash(*seed, key)
	if i, ok := top.hashed[h]; !ok {
		top.hashed[h] = len(keys)
	} else if bytes.EqualFold(keys[i], key) {
		return keys, true
	} else { // another name with the same hash
		for _, k := range names {
			if bytes.EqualFold(k, key) {
				return keys, true
			}
		}
	}
	return append(keys, key), false
}

// foldHash hashes a name in lower case, so that names bytes.EqualFold
// finds equal hash alike (an ASCII name without an allocation).
func foldHash(seed maphash.Seed, key []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for _, c := range key {
		if c >= utf8.RuneSelf {
			h.Reset()
			h.Write(bytes.ToLower(key))
			return h.Sum64()
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h.WriteByte(c)
	}
	return h.Sum64()
}

// scanString scans the string at pos and returns the position after it;
// plain is false when it has escapes or bytes outside ASCII.
func scanString(body []byte, pos int) (end int, plain, ok bool) {
	pos++ // the opening quote
	plain = true
	for pos < len(body) {
		switch c := body[pos]; {
		case c == '"':
			return pos + 1, plain, true
		case c == '\\':
			plain = false
			if pos+1 >= len(body) {
				return pos, false, false
			}
			switch body[pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				pos += 2
			case 'u':
				if pos+5 >= len(body) {
					return pos, false, false
				}
				for _, h := range body[pos+2 : pos+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return pos, false, false
					}
				}
				pos += 6
			default:
				return pos, false, false
			}
		case c < 0x20:
			return pos, false, false
		default:
			if c >= utf8.RuneSelf {
				plain = false
			}
			pos++
		}
	}
	return pos, false, false
}

// scanNumber scans the number at pos and returns the position after it
// and its magnitude: the number is under 10^magnitude.
func scanNumber(body []byte, pos int) (end, magnitude int, ok bool) {
	if body[pos] == '-' {
		pos++
	}
	intStart := pos
	switch {
	case pos < len(body) && body[pos] == '0':
		pos++
	case pos < len(body) && '1' <= body[pos] && body[pos] <= '9':
		pos = skipDigits(body, pos)
	default:
		return pos, 0, false
	}
	magnitude = pos - intStart
	if pos < len(body) && body[pos] == '.' {
		if end := skipDigits(body, pos+1); end > pos+1 {
			pos = end
		} else {
			return pos, 0, false
		}
	}
	if pos < len(body) && (body[pos] == 'e' || body[pos] == 'E') {
		pos++
		neg := false
		if pos < len(body) && (body[pos] == '+' || body[pos] == '-') {
			neg = body[pos] == '-'
			pos++
		}
		end := skipDigits(body, pos)
		if end == pos {
			return pos, 0, false
		}
		exp := 0
		for _, d := range body[pos:end] {
			if exp < 1<<20 {
				exp = exp*10 + int(d-'0')
			}
		}
		if neg {
			exp = -exp
		}
		magnitude += exp
		pos = end
	}
	return pos, magnitude, true
}

func skipDigits(body []byte, pos int) int {
	for pos < len(body) && '0' <= body[pos] && body[pos] <= '9' {
		pos++
	}
	return pos
}

func scanLiteral(body []byte, pos int, lit string) (int, bool) {
	if len(body)-pos < len(lit) || string(body[pos:pos+len(lit)]) != lit {
		return pos, false
	}
	return pos + len(lit), true
}

func skipSpace(body []byte, pos int) int {
	for pos < len(body) {
		switch body[pos] {
		case ' ', '\t', '\n', '\r':
			pos++
		default:
			return pos
		}
	}
	return pos
}

// numberText is a number as a message shows it: whole up to 40 bytes.
func numberText(tok []byte) string {
	if len(tok) <= 40 {
		return string(tok)
	}
	return string(tok[:20]) + "…(" + strconv.Itoa(len(tok)) + " characters)"
}

// pointer is the JSON pointer of the value (or member) being scanned.
func pointer(stack []jsonFrame) string {
	tokens := make([]string, len(stack))
	for i := range stack {
		if stack[i].object {
			tokens[i] = string(stack[i].key)
		} else {
			tokens[i] = strconv.Itoa(stack[i].index)
		}
	}
	return jsonPointer(tokens)
}
