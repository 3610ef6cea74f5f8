//go:build !purego

#include "textflag.h"

// func ctlBlocks(b []byte) int
//
// ctlBlocksAVX2 where the processor has AVX2 (ctlAVX2, set once at start),
// else ctlBlocksSSE2, by a tail jump: three instructions per call, where a
// Go function that branched would be a call of its own (it cannot be
// inlined: two calls of assembly exceed the budget), 18 instructions.
TEXT ·ctlBlocks(SB), NOSPLIT, $0-32
	CMPB	·ctlAVX2(SB), $0
	JEQ	sse2
	JMP	·ctlBlocksAVX2(SB)

sse2:
	JMP	·ctlBlocksSSE2(SB)

// func ctlBlocksSSE2(b []byte) int
//
// The index of the first byte of b below 0x20 or equal to 0x7f among its
// whole 16-byte blocks, or len(b) rounded down to a multiple of 16 when
// they hold none. SSE2, which every amd64 processor has: per block, a
// byte b is flagged when min(b, 0x1f) == b or b == 0x7f.
TEXT ·ctlBlocksSSE2(SB), NOSPLIT, $0-32
	MOVQ	b_base+0(FP), SI
	MOVQ	b_len+8(FP), BX
	ANDQ	$~15, BX
	XORQ	AX, AX
	MOVQ	$0x1f1f1f1f1f1f1f1f, DX
	MOVQ	DX, X1
	PUNPCKLQDQ	X1, X1
	MOVQ	$0x7f7f7f7f7f7f7f7f, DX
	MOVQ	DX, X2
	PUNPCKLQDQ	X2, X2
	LEAQ	-16(BX), CX // the last offset at which two blocks fit

pairs:
	CMPQ	AX, CX
	JGE	single
	MOVOU	(SI)(AX*1), X0
	MOVOU	16(SI)(AX*1), X4
	MOVO	X0, X3
	MOVO	X4, X5
	PMINUB	X1, X3
	PMINUB	X1, X5
	PCMPEQB	X0, X3
	PCMPEQB	X4, X5
	PCMPEQB	X2, X0
	PCMPEQB	X2, X4
	POR	X3, X0
	POR	X5, X4
	POR	X0, X4
	PMOVMSKB	X4, DX
	TESTL	DX, DX
	JNZ	single // a flagged byte in the pair: the single blocks find it
	ADDQ	$32, AX
	JMP	pairs

single:
	CMPQ	AX, BX
	JGE	done
	MOVOU	(SI)(AX*1), X0
	MOVO	X0, X3
	PMINUB	X1, X3
	PCMPEQB	X0, X3
	PCMPEQB	X2, X0
	POR	X3, X0
	PMOVMSKB	X0, DX
	TESTL	DX, DX
	JNZ	found
	ADDQ	$16, AX
	JMP	single

found:
	BSFL	DX, DX
	ADDQ	DX, AX

done:
	MOVQ	AX, ret+24(FP)
	RET

// ctlBytes are the bytes ctlBlocksAVX2 broadcasts: the highest control
// byte and DEL.
DATA ctlBytes<>+0(SB)/1, $0x1f
DATA ctlBytes<>+1(SB)/1, $0x7f
GLOBL ctlBytes<>(SB), RODATA|NOPTR, $2

// func ctlBlocksAVX2(b []byte) int
//
// ctlBlocksSSE2's result, and its test, with AVX2: 64 bytes per loop
// iteration (two 32-byte compares, one mask test), then a 32-byte and a
// 16-byte step for the rest of the whole blocks; the 16-byte step is
// VEX-encoded like the rest, so there is no SSE/AVX transition. CX is the
// offset of the next bytes from DI, the end of the whole blocks, plus 64:
// 64-CX bytes are left, and the loop's ADDQ sets the flags for its branch
// (no CMPQ). BSF rather than TZCNT, which would need BMI1 too. VZEROUPPER
// before each RET, since the upper halves of Y1-Y6 are dirty.
TEXT ·ctlBlocksAVX2(SB), NOSPLIT, $0-32
	MOVQ	b_base+0(FP), SI
	MOVQ	b_len+8(FP), BX
	ANDQ	$~15, BX
	VPBROADCASTB	ctlBytes<>+0(SB), Y1
	VPBROADCASTB	ctlBytes<>+1(SB), Y2
	LEAQ	(SI)(BX*1), DI
	MOVQ	$64, CX
	SUBQ	BX, CX
	JG	step32 // less than 64 bytes

loop64:
	VMOVDQU	-64(DI)(CX*1), Y3
	VMOVDQU	-32(DI)(CX*1), Y4
	VPMINUB	Y1, Y3, Y5
	VPMINUB	Y1, Y4, Y6
	VPCMPEQB	Y3, Y5, Y5
	VPCMPEQB	Y4, Y6, Y6
	VPCMPEQB	Y2, Y3, Y3
	VPCMPEQB	Y2, Y4, Y4
	VPOR	Y5, Y3, Y3
	VPOR	Y6, Y4, Y4
	VPOR	Y3, Y4, Y5
	VPMOVMSKB	Y5, DX
	TESTL	DX, DX
	JNZ	found64
	ADDQ	$64, CX
	JLE	loop64

step32:
	CMPQ	CX, $32
	JG	step16 // less than 32 bytes
	VMOVDQU	-64(DI)(CX*1), Y3
	VPMINUB	Y1, Y3, Y5
	VPCMPEQB	Y3, Y5, Y5
	VPCMPEQB	Y2, Y3, Y3
	VPOR	Y5, Y3, Y3
	VPMOVMSKB	Y3, DX
	TESTL	DX, DX
	JNZ	found
	ADDQ	$32, CX

step16:
	CMPQ	CX, $48
	JG	none // no block left
	VMOVDQU	-64(DI)(CX*1), X3
	VPMINUB	X1, X3, X5
	VPCMPEQB	X3, X5, X5
	VPCMPEQB	X2, X3, X3
	VPOR	X5, X3, X3
	VPMOVMSKB	X3, DX
	TESTL	DX, DX
	JNZ	found

none:
	MOVQ	BX, ret+24(FP)
	VZEROUPPER
	RET

found64:
	// The 64 bytes' mask, the first 32 in the low half.
	VPMOVMSKB	Y3, DX
	VPMOVMSKB	Y4, R8
	SHLQ	$32, R8
	ORQ	R8, DX

found:
	// The flagged byte's index: the vector's, BX+CX-64, plus its own.
	BSFQ	DX, DX
	LEAQ	-64(BX)(CX*1), AX
	ADDQ	DX, AX
	MOVQ	AX, ret+24(FP)
	VZEROUPPER
	RET
