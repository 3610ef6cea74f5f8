package h1

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
)

// validFieldValue agrees with the byte-by-byte definition for every byte
// value at every position of a word and of the tail, and on random
// values.
func TestValidFieldValue_MatchesByteLoop(t *testing.T) {
	byteLoop := func(b []byte) bool {
		for _, c := range b {
			if !isFieldValueByte(c) {
				return false
			}
		}
		return true
	}
	for n := 0; n <= 70; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := []byte(strings.Repeat("a", n))
				b[pos] = byte(c)
				if got, want := validFieldValue(b), byteLoop(b); got != want {
					t.Fatalf("len %d, byte %#x at %d: got %v, want %v", n, c, pos, got, want)
				}
				if got := validFieldValueString(string(b)); got != byteLoop(b) {
					t.Fatalf("string form differs: len %d, byte %#x at %d", n, c, pos)
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pool := []byte{0, 0x09, 0x0a, 0x1f, 0x20, 0x41, 0x7e, 0x7f, 0x80, 0x9f, 0xa0, 0xff}
	for range 20000 {
		b := make([]byte, rng.IntN(100))
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = pool[rng.IntN(len(pool))]
			} else {
				b[i] = byte(0x20 + rng.IntN(0x5f))
			}
		}
		if got, want := validFieldValue(b), byteLoop(b); got != want {
			t.Fatalf("%q: got %v, want %v", b, got, want)
		}
	}
}

func BenchmarkValidFieldValue(b *testing.B) {
	v := []byte("Bearer " + strings.Repeat("eyJhbGciOiJSUzI1NiIsInR5cCI6", 40))
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if !validFieldValue(v) {
			b.Fatal("invalid")
		}
	}
}

// suspectWord never misses a byte below 0x20 or a DEL, and what it flags
// below the first of them is only a 0x7e after a 0xff or 0xfe byte (its
// one false positive, which its callers look past): every pair of byte values at
// every pair of positions, in words of 'a's and of 0xff's.
func TestSuspectWord(t *testing.T) {
	ctl := func(c byte) bool { return c < 0x20 || c == 0x7f }
	for _, fill := range []byte{'a', 0xff} {
		for p := 0; p < 8; p++ {
			for q := p + 1; q < 8; q++ {
				for a := 0; a < 256; a++ {
					for c := 0; c < 256; c++ {
						var w [8]byte
						for i := range w {
							w[i] = fill
						}
						w[p], w[q] = byte(a), byte(c)
						m := suspectWord(binary.LittleEndian.Uint64(w[:]))
						first := -1
						for i, x := range w {
							if ctl(x) {
								first = i
								break
							}
						}
						if m == 0 {
							if first >= 0 {
								t.Fatalf("%x: missed the byte at %d", w, first)
							}
							continue
						}
						low := bits.TrailingZeros64(m) >> 3
						if first >= 0 && low > first {
							t.Fatalf("%x: lowest flag at %d, after the byte at %d", w, low, first)
						}
						if !ctl(w[low]) && !(w[low] == 0x7e && low > 0 && w[low-1] >= 0xfe) {
							t.Fatalf("%x: flagged %#x at %d", w, w[low], low)
						}
					}
				}
			}
		}
	}
}
