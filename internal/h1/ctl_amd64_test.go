//go:build !purego

package h1

import (
	"testing"

	"golang.org/x/sys/cpu"
)

// ctlBlocksVariants are both of ctl_amd64.s's bodies, each called
// directly (AVX2's only where the processor has it), and the dispatch.
var ctlBlocksVariants = []ctlBlocksVariant{
	{"ctlBlocksSSE2", ctlBlocksSSE2, ""},
	{"ctlBlocksAVX2", ctlBlocksAVX2, noAVX2()},
	{"ctlBlocks", ctlBlocks, ""},
}

// noAVX2 is why ctlBlocksAVX2 cannot be tested here, if it cannot.
func noAVX2() string {
	if !cpu.X86.HasAVX2 {
		return "the processor has no AVX2"
	}
	return ""
}

// ctlBlocks runs ctlBlocksAVX2 exactly where there is AVX2.
func TestCtlBlocksDispatch(t *testing.T) {
	if ctlAVX2 != cpu.X86.HasAVX2 {
		t.Fatalf("ctlAVX2 = %v, cpu.X86.HasAVX2 = %v", ctlAVX2, cpu.X86.HasAVX2)
	}
}
