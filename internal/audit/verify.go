package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Result is the outcome of Verify.
type Result struct {
	// Records is how many records were read.
	Records int
	// HeadSeq and HeadHash are the last record's; keep them somewhere
	// else to detect, later, that records were cut from the end.
	HeadSeq  int64
	HeadHash string
	// Problem is the first break in the chain, or nil.
	Problem *Problem
}

// Problem names the first record that was altered or removed.
type Problem struct {
	Seq int64
	Msg string
}

func (p *Problem) Error() string { return p.Msg }

// Head is a (seq, hash) pair recorded earlier, e.g. "42:9f86d0...".
type Head struct {
	Seq  int64
	Hash string
}

// ParseHead parses "SEQ:HASH".
func ParseHead(s string) (Head, error) {
	seq, hash, ok := strings.Cut(s, ":")
	n, err := strconv.ParseInt(seq, 10, 64)
	if !ok || err != nil || n < 1 || len(hash) != 64 {
		return Head{}, fmt.Errorf("%q is not SEQ:HASH (as printed by 'gatehouse audit verify')", s)
	}
	return Head{Seq: n, Hash: strings.ToLower(hash)}, nil
}

// pageSize is how many records Verify reads at once.
const pageSize = 500

// Verify walks the whole log and checks that records are numbered from 1
// without gaps, that each one's hash is the hash of its contents, and
// that each links to the one before. It stops at the first problem. When
// expect is set, the log must also contain that record, unchanged (which
// catches records cut from the end, the one change a chain cannot show
// by itself).
func Verify(ctx context.Context, log store.AuditLog, expect *Head) (Result, error) {
	var (
		res      Result
		prevSeq  int64
		prevHash string
		expected bool
	)
	for {
		recs, err := log.ListAudit(ctx, prevSeq, pageSize)
		if err != nil {
			return res, err
		}
		for _, r := range recs {
			res.Records++
			switch {
			case r.Seq != prevSeq+1:
				res.Problem = &Problem{Seq: prevSeq + 1, Msg: fmt.Sprintf("record %d was removed: the log goes from record %d to record %d", prevSeq+1, prevSeq, r.Seq)}
			case r.Hash != store.AuditHash(r):
				res.Problem = &Problem{Seq: r.Seq, Msg: fmt.Sprintf("record %d was altered: its contents do not match its hash", r.Seq)}
			case r.PrevHash != prevHash:
				res.Problem = &Problem{Seq: prevSeq, Msg: fmt.Sprintf("record %d was altered: record %d no longer links to it", prevSeq, r.Seq)}
				if prevSeq == 0 {
					res.Problem = &Problem{Seq: r.Seq, Msg: fmt.Sprintf("record %d was altered: the first record links to a predecessor", r.Seq)}
				}
			case expect != nil && r.Seq == expect.Seq && r.Hash != expect.Hash:
				res.Problem = &Problem{Seq: r.Seq, Msg: fmt.Sprintf("record %d is not the one recorded earlier: the log was rewritten from there on", r.Seq)}
			}
			if res.Problem != nil {
				return res, nil
			}
			if expect != nil && r.Seq == expect.Seq {
				expected = true
			}
			prevSeq, prevHash = r.Seq, r.Hash
			res.HeadSeq, res.HeadHash = r.Seq, r.Hash
		}
		if len(recs) < pageSize {
			break
		}
	}
	if expect != nil && !expected {
		res.Problem = &Problem{Seq: prevSeq + 1, Msg: fmt.Sprintf("records %d to %d were removed from the end of the log", prevSeq+1, expect.Seq)}
	}
	return res, nil
}
