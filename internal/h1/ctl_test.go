package h1

import (
	"bytes"
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

// ctlBlocksVariant is an implementation of ctlBlocks that TestCtlBlocks
// checks (ctlBlocksVariants, per platform); skip says why it cannot run
// here, if it cannot.
type ctlBlocksVariant struct {
	name string
	fn   func([]byte) int
	skip string
}

// Every implementation of ctlBlocks (the dispatch and, on amd64, the SSE2
// and the AVX2 one called directly) finds the first control byte or DEL of
// b's whole 16-byte blocks wherever it is, and nothing else: every byte
// value at every position of every length up to 200, in a field of 'a's
// and of bytes next to the flagged ones (0xff, 0x80, 0x20, 0x7e by turns),
// so that AVX2's 64-byte loop, its 32-byte step and its 16-byte step each
// meet every value; flagged bytes only past the last whole block, and past
// the end of b; two flagged bytes; and random values. The slices start
// anywhere within 64 bytes.
func TestCtlBlocks(t *testing.T) {
	var variants []ctlBlocksVariant
	for _, v := range ctlBlocksVariants {
		if v.skip != "" {
			t.Run(v.name, func(t *testing.T) { t.Skip(v.skip) })
			continue
		}
		variants = append(variants, v)
	}
	// check compares every variant's ctlBlocks(b) with want, ctlBlocksRef's.
	check := func(b []byte, want int) int {
		for _, v := range variants {
			if got := v.fn(b); got != want {
				t.Helper() // only here: it costs more than the calls
				t.Fatalf("%s(%q) = %d, want %d", v.name, b, got, want)
			}
		}
		return want
	}
	// isCtl is the reference's verdict on each byte value, and flagged
	// lists the values it flags.
	var isCtl [256]bool
	var flagged []byte
	for c := range isCtl {
		if isCtl[c] = ctlBlocksRef(bytes.Repeat([]byte{byte(c)}, 16)) == 0; isCtl[c] {
			flagged = append(flagged, byte(c))
		}
	}

	// The slices start at varying offsets in buf, and the bytes after them
	// are control bytes, which must not count. The reference's result for
	// one byte value at pos is its result for any value of the same verdict:
	// two calls per position rather than 256, which the race detector's
	// instrumented byte loop would make the most of the test's time.
	var buf [200 + 2*64]byte
	for n := 0; n <= 200; n++ {
		off := n * 7 % 64
		for _, fill := range []byte{'a', []byte{0xff, 0x80, 0x20, 0x7e}[n%4]} {
			for i := range buf {
				buf[i] = 0
			}
			b := buf[off : off+n]
			for i := range b {
				b[i] = fill
			}
			miss := check(b, ctlBlocksRef(b))
			for pos := 0; pos < n; pos++ {
				b[pos] = flagged[0]
				hit := ctlBlocksRef(b)
				for c := range 256 {
					b[pos] = byte(c)
					if isCtl[c] {
						check(b, hit)
					} else {
						check(b, miss)
					}
				}
				b[pos] = fill
			}
		}
	}

	// Flagged bytes only past the last whole block (and past b): the result
	// is len(b)&^15, one flagged byte at a time and all of them.
	for n := 0; n <= 200; n++ {
		for off := range 64 {
			for i := range buf {
				buf[i] = 0x01
			}
			b := buf[off : off+n]
			for i := range b {
				b[i] = 'a'
			}
			if want := ctlBlocksRef(b); want != n&^15 {
				t.Fatalf("ctlBlocksRef(%q) = %d, want %d", b, want, n&^15)
			}
			check(b, n&^15)
			for pos := n &^ 15; pos < n; pos++ {
				for _, c := range flagged {
					b[pos] = c
					check(b, ctlBlocksRef(b))
				}
				b[pos] = 'a'
			}
			for pos := n &^ 15; pos < n; pos++ {
				b[pos] = 0x7f
			}
			check(b, ctlBlocksRef(b))
		}
	}

	// Two flagged bytes, in one vector or in two.
	for n := 0; n <= 200; n += 3 {
		b := buf[n%64 : n%64+n]
		for i := range b {
			b[i] = '~'
		}
		for i := range n {
			b[i] = 0x7f
			for j := i + 1; j < n; j++ {
				b[j] = '\n'
				check(b, ctlBlocksRef(b))
				b[j] = '~'
			}
			b[i] = '~'
		}
	}

	src := rand.NewChaCha8([32]byte{8, 9})
	rng := rand.New(src)
	for range 200000 {
		src.Read(buf[:])
		off, n := rng.IntN(64), rng.IntN(len(buf)-64+1)
		b := buf[off : off+n]
		for i, c := range b {
			b[i] = 0x20 + c%0xe0 // flagged only if 0x7f
		}
		for range rng.IntN(3) {
			if len(b) > 0 {
				b[rng.IntN(len(b))] = flagged[rng.IntN(len(flagged))]
			}
		}
		check(b, ctlBlocksRef(b))
	}
}
