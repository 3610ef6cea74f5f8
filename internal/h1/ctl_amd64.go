//go:build !purego

package h1

import "golang.org/x/sys/cpu"

// haveCtlBlocks says that ctlBlocks is the processor's vector compare.
const haveCtlBlocks = true

// ctlAVX2 says that ctlBlocks runs ctlBlocksAVX2: the processor (and the
// operating system) has AVX2. ctl_amd64.s reads it as a byte.
var ctlAVX2 = cpu.X86.HasAVX2

// ctlBlocks returns the index of the first byte of b below 0x20 or equal
// to 0x7f among b's whole 16-byte blocks, or len(b)&^15 when they hold
// none: ctlBlocksAVX2 where there is AVX2, else ctlBlocksSSE2 (ctl_amd64.s
// branches on ctlAVX2).
//
//go:noescape
func ctlBlocks(b []byte) int

// ctlBlocksSSE2 is ctlBlocks with SSE2, which every amd64 processor has:
// 16 bytes per compare, 32 per loop iteration.
//
//go:noescape
func ctlBlocksSSE2(b []byte) int

// ctlBlocksAVX2 is ctlBlocks with AVX2: 32 bytes per compare, 64 per loop
// iteration, under half ctlBlocksSSE2's instructions (200 against 470 for a
// 735-byte bearer token). Only where ctlAVX2.
//
//go:noescape
func ctlBlocksAVX2(b []byte) int
