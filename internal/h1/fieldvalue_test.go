package h1

import (
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
