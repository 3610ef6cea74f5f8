package h1

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// twoStep is what parseFieldLine replaces: nextLine finds the line's end,
// then parseField parses it.
func twoStep(b []byte, off int) (field, int, error) {
	end, next, ok, err := nextLine(b, off)
	if err != nil {
		return field{}, 0, err
	}
	if !ok {
		return field{}, 0, errIncompleteLine
	}
	f, err := parseField(b[off:end], off)
	if err != nil {
		return field{}, 0, err
	}
	return f, next, nil
}

// parseFieldLine agrees with nextLine and parseField on every field line
// that findHeadEnd lets through (each line ends with CRLF, no bare LF):
// every byte value at every position of lines of 1 to 70 bytes, then
// random lines of up to 300 bytes, at several offsets in the head and
// with several lines after it.
func TestParseFieldLine_MatchesTwoSteps(t *testing.T) {
	check := func(prefix, line []byte, after string) {
		t.Helper()
		b := append(append(append([]byte(nil), prefix...), line...), "\r\n"+after...)
		if n, _, err := findHeadEnd(b, 0); err != nil || after == "\r\n" && n == 0 {
			return // not a head findHeadEnd lets through: never parsed
		}
		off := len(prefix)
		f1, n1, e1 := parseFieldLine(b, off)
		f2, n2, e2 := twoStep(b, off)
		if e1 != e2 || e1 == nil && (f1 != f2 || n1 != n2) {
			t.Fatalf("%q at %d: fused (%v, %d, %v), two steps (%v, %d, %v)", b, off, f1, n1, e1, f2, n2, e2)
		}
	}
	prefixes := [][]byte{nil, []byte("GET / HTTP/1.1\r\n"), []byte("HTTP/1.1 200 OK\r\nA: b\r\n")}
	afters := []string{"\r\n", "X-Next: value\r\n\r\n", ""}
	for n := 1; n <= 70; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				if c == '\n' {
					continue // a bare LF: findHeadEnd refuses the head
				}
				line := []byte("Name:" + strings.Repeat("v", n))
				if pos%3 == 1 {
					line = []byte(strings.Repeat("n", n) + ": v")
				}
				line[pos] = byte(c)
				check(prefixes[pos%len(prefixes)], line, afters[c%len(afters)])
			}
		}
	}
	rng := rand.New(rand.NewPCG(6, 26))
	pool := []byte("\x00\t\x1f !:;\r\x7f\x80\xff aZ-_~")
	for range 200000 {
		line := make([]byte, 1+rng.IntN(300))
		for i := range line {
			switch r := rng.IntN(16); {
			case r == 0:
				line[i] = pool[rng.IntN(len(pool))]
			case r < 4:
				line[i] = ' '
			default:
				line[i] = byte('a' + rng.IntN(26))
			}
		}
		if i := rng.IntN(len(line)); rng.IntN(4) != 0 {
			line[i] = ':'
		}
		line = bytes.ReplaceAll(line, []byte("\r\n"), []byte("\r."))
		line = bytes.ReplaceAll(line, []byte("\n"), []byte("."))
		check(prefixes[rng.IntN(len(prefixes))], line, afters[rng.IntN(len(afters))])
	}
}

// A line cut anywhere before its LF is incomplete, never a field: the
// parser does not read past the end of what it was given.
func TestParseFieldLine_Incomplete(t *testing.T) {
	line := "X-Name:  a value\twith tab " + strings.Repeat("long ", 20) + "\r\n"
	for n := 0; n < len(line); n++ {
		if _, _, err := parseFieldLine([]byte(line[:n]), 0); err != errIncompleteLine {
			t.Fatalf("cut at %d: %v", n, err)
		}
	}
	f, next, err := parseFieldLine([]byte(line), 0)
	if err != nil || next != len(line) || string(f.name.get([]byte(line))) != "X-Name" ||
		string(f.value.get([]byte(line))) != strings.TrimRight(line[9:len(line)-2], " ") {
		t.Fatalf("whole line: %v %d %v", f, next, err)
	}
}

// checkPrefixParse fails t when a head the prefix parsers accept at the
// start of data is not the one findHeadEnd finds there, without error,
// or parses differently on its own: readHead takes the prefix parsers'
// word for it instead of the two steps.
func checkPrefixParse(t *testing.T, data []byte) {
	t.Helper()
	var pre, whole requestHead
	if n, pe := parseRequestHeadPrefix(data, &pre, DefaultMaxURIBytes); pe == nil && n > 0 {
		m, _, err := findHeadEnd(data, 0)
		if err != nil || m != n {
			t.Fatalf("%q: request head of %d bytes, findHeadEnd says %d, %v", data, n, m, err)
		}
		if pe := parseRequestHead(data[:n], &whole, DefaultMaxURIBytes); pe != nil || !reflect.DeepEqual(pre, whole) {
			t.Fatalf("%q: parsed alone: %v\n%+v\n%+v", data, pe, pre, whole)
		}
	}
	var rpre, rwhole responseHead
	if n, err := parseResponseHeadPrefix(data, &rpre); err == nil {
		m, _, err := findHeadEnd(data, 0)
		if err != nil || m != n {
			t.Fatalf("%q: response head of %d bytes, findHeadEnd says %d, %v", data, n, m, err)
		}
		if err := parseResponseHead(data[:n], &rwhole); err != nil || !reflect.DeepEqual(rpre, rwhole) {
			t.Fatalf("%q: parsed alone: %v\n%+v\n%+v", data, err, rpre, rwhole)
		}
	}
}

// The prefix parsers accept a head only where findHeadEnd finds its end
// and the complete-head parsers agree, on mutations of real heads
// followed by what may come after a head (a body, a pipelined request,
// nothing, half a line).
func TestParsePrefix_SameAsFindHeadEnd(t *testing.T) {
	heads := []string{
		string(benchRequest),
		"POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX-T: a\tb\r\n\r\n",
		"GET http://h:80/p HTTP/1.1\r\nHost: h:80\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		string(benchResponse[:bytes.Index(benchResponse, []byte("\r\n\r\n"))+4]),
		"HTTP/1.1 100 Continue\r\n\r\n",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
	}
	tails := []string{"", "abc", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "\r\n", "\n\n", "X: y"}
	pool := []byte("\r\n\t :\x00\x7f\xffaZ0-/")
	rng := rand.New(rand.NewPCG(26, 11))
	for range 100000 {
		b := []byte(heads[rng.IntN(len(heads))])
		for range rng.IntN(4) {
			switch i := rng.IntN(len(b)); rng.IntN(3) {
			case 0:
				b[i] = pool[rng.IntN(len(pool))]
			case 1:
				b = append(b[:i], b[i+1:]...)
			default:
				b = append(b[:i], append([]byte{pool[rng.IntN(len(pool))]}, b[i:]...)...)
			}
			if len(b) == 0 {
				b = []byte("\r\n")
			}
		}
		b = append(b, tails[rng.IntN(len(tails))]...)
		if rng.IntN(3) == 0 {
			b = b[:rng.IntN(len(b)+1)]
		}
		checkPrefixParse(t, b)
	}
}

// notLetterOrHyphen flags exactly the bytes that are not an ASCII letter
// or '-', whatever their neighbours: every pair of byte values at every
// pair of positions of a word of letters. skipNameBytes, which stops at
// its first flag, then agrees with a byte loop over tchar.
func TestNotLetterOrHyphen(t *testing.T) {
	want := func(c byte) bool { return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') }
	for p := 0; p < 8; p++ {
		for q := p + 1; q < 8; q++ {
			for a := 0; a < 256; a++ {
				for c := 0; c < 256; c++ {
					w := [8]byte{'a', 'B', 'c', '-', 'Z', 'y', 'x', 'A'}
					w[p], w[q] = byte(a), byte(c)
					m := notLetterOrHyphen(binary.LittleEndian.Uint64(w[:]))
					for i, b := range w {
						if got := m>>(8*i)&0xff == 0x80; got != want(b) {
							t.Fatalf("%q: byte %d (%#x) flagged %v", w, i, b, got)
						}
					}
					if m&^0x8080808080808080 != 0 {
						t.Fatalf("%q: bits other than the high bits: %#x", w, m)
					}
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 27))
	pool := []byte("-_~!#.09:;@[`{\x00\x7f\x80\xff ")
	for range 100000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			if rng.IntN(8) == 0 {
				b[i] = pool[rng.IntN(len(pool))]
			} else {
				b[i] = byte('A' + rng.IntN(58))
			}
		}
		from := 0
		if len(b) > 0 {
			from = rng.IntN(len(b))
		}
		j := from
		for j < len(b) && tchar[b[j]] {
			j++
		}
		if got := skipNameBytes(b, from); got != j {
			t.Fatalf("skipNameBytes(%q, %d) = %d, want %d", b, from, got, j)
		}
	}
}
