//go:build !purego

#include "textflag.h"

// func ctlBlocks(b []byte) int
//
// The index of the first byte of b below 0x20 or equal to 0x7f among its
// whole 16-byte blocks, or len(b) rounded down to a multiple of 16 when
// they hold none. SSE2, which every amd64 processor has: per block, a
// byte b is flagged when min(b, 0x1f) == b or b == 0x7f.
TEXT ·ctlBlocks(SB), NOSPLIT, $0-32
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
