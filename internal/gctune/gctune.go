// Package gctune keeps the garbage collector's heap goal a fixed headroom
// above the live heap, for a process whose live heap is small and whose
// allocation rate is high, as a gateway's is.
//
// With GOGC alone the goal is the live heap times (1 + GOGC/100): a few
// megabytes for a gateway, so it collects every few thousand requests,
// and each cycle's fixed costs (stacks, globals, sweeping) are paid that
// often. A goal of at least a fixed headroom above the live heap makes
// cycles rare while the live heap is small, and changes nothing once it
// is large (GOGC then stays at its floor, so memory stays proportional
// to the live heap, as before). This is what GOGC tuners in production Go
// services do; GOMEMLIMIT, when set, still caps the goal.
package gctune

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Policy says how GOGC follows the live heap.
type Policy struct {
	// MinPercent is GOGC's floor: the goal is never below the live heap
	// times (1 + MinPercent/100).
	MinPercent int
	// Headroom is how far above the live heap the goal is at least, in
	// bytes.
	Headroom uint64
	// MaxPercent caps GOGC for a tiny live heap. The runtime's minimum
	// heap goal is 4 MiB × GOGC/100, so the cap is also the goal's floor:
	// Headroom/(40 KiB) makes it about the headroom.
	MaxPercent int
}

// Default is Gatehouse's policy: GOGC 400 at least (the default before
// the tuner), and a goal at least 64 MiB above the live heap: GOGC 1600
// at most, whose minimum goal is 64 MiB.
var Default = Policy{MinPercent: 400, Headroom: 64 << 20, MaxPercent: 1600}

// Percent returns the GOGC the policy sets for a live heap of live bytes
// (none before the first cycle has measured it: MaxPercent, whose goal,
// the runtime's minimum, is about the headroom).
func (p Policy) Percent(live uint64) int {
	if live == 0 {
		return p.MaxPercent
	}
	pct := p.Headroom * 100 / live
	switch {
	case pct <= uint64(p.MinPercent):
		return p.MinPercent
	case pct >= uint64(p.MaxPercent):
		return p.MaxPercent
	}
	return int(pct)
}

// LiveHeap returns the bytes of heap that the last GC cycle found live
// (the runtime/metrics value /gc/heap/live:bytes).
func LiveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Run sets GOGC from the live heap now and then every interval, until ctx
// is done. It changes GOGC only when the policy's value differs from the
// one it set last by more than a tenth, and leaves GOGC at the last value
// it set when it returns.
func Run(ctx context.Context, p Policy, every time.Duration) {
	last := p.Percent(LiveHeap())
	debug.SetGCPercent(last)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if pct := p.Percent(LiveHeap()); pct*10 > last*11 || pct*11 < last*10 {
			debug.SetGCPercent(pct)
			last = pct
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
