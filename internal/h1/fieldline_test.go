package h1

import (
	"bytes"
	"math/rand/v2"
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
