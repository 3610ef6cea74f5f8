package h1

import (
	"math/rand/v2"
	"testing"
)

// ctlBlocksRef is ctlBlocks' definition, a byte at a time.
func ctlBlocksRef(b []byte) int {
	n := len(b) &^ 15
	for i, c := range b[:n] {
		if c < 0x20 || c == 0x7f {
			return i
		}
	}
	return n
}

// ctlBlocks finds the first control byte or DEL of b's whole 16-byte
// blocks wherever it is, and nothing else: every byte value at every
// position of every length up to 100 (in a field of 'a's and of 0xff's),
// two flagged bytes in one block and in a pair of blocks, and random
// values; the bytes past the last whole block are never looked at.
func TestCtlBlocks(t *testing.T) {
	check := func(b []byte) {
		t.Helper()
		if got, want := ctlBlocks(b), ctlBlocksRef(b); got != want {
			t.Fatalf("ctlBlocks(%q) = %d, want %d", b, got, want)
		}
	}
	for n := 0; n <= 100; n++ {
		for _, fill := range []byte{'a', 0xff, 0x80, 0x20, 0x7e} {
			b := make([]byte, n)
			for i := range b {
				b[i] = fill
			}
			check(b)
			for pos := 0; pos < n; pos++ {
				for c := 0; c < 256; c++ {
					b[pos] = byte(c)
					check(b)
				}
				b[pos] = fill
			}
		}
	}
	rng := rand.New(rand.NewPCG(8, 9))
	for range 200000 {
		b := make([]byte, rng.IntN(200))
		for i := range b {
			b[i] = byte(0x20 + rng.IntN(0xe0))
		}
		for range rng.IntN(3) {
			if len(b) > 0 {
				b[rng.IntN(len(b))] = []byte{0, 9, 10, 13, 0x1f, 0x7f}[rng.IntN(6)]
			}
		}
		off := 0
		if len(b) > 0 {
			off = rng.IntN(len(b)) // an unaligned start
		}
		check(b[off:])
	}
}
