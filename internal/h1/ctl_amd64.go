//go:build !purego

package h1

// haveCtlBlocks says that ctlBlocks is the processor's vector compare.
const haveCtlBlocks = true

// ctlBlocks returns the index of the first byte of b below 0x20 or equal
// to 0x7f among b's whole 16-byte blocks, or len(b)&^15 when they hold
// none (ctl_amd64.s: SSE2, 16 bytes per compare).
//
//go:noescape
func ctlBlocks(b []byte) int
