package gctune

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	p := Default
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, 1600},               // nothing measured yet: the cap, a 64 MiB goal
		{100 << 10, 1600},       // a tiny heap: capped (a 64 MiB goal, the runtime's minimum at 1600)
		{4 << 20, 1600},         // 4 MiB live: a goal 64 MiB above it
		{5 << 20, 1280},         // 5 MiB: 1280 %, a goal of 69 MiB
		{16 << 20, 400},         // from here on the floor decides
		{36 << 20, 400},         // a million rate-limit keys: as before the tuner
		{1 << 30, 400},          // large heaps: proportional, as with GOGC=400
		{(64 << 20) / 3, 400},   // 300 %: below the floor
		{(64 << 20) / 10, 1000}, // 1000 %
	} {
		if got := p.Percent(c.live); got != c.want {
			t.Errorf("Percent(%d) = %d, want %d", c.live, got, c.want)
		}
	}
}

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// Run sets what the policy says for the heap it reads, and follows it.
func TestRunFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	runtime.GC()
	live := LiveHeap()
	if live == 0 {
		t.Fatal("no live heap reading")
	}
	// A headroom of twenty live heaps: 2000 %, whatever the test binary's heap.
	p := Policy{MinPercent: 100, Headroom: 20 * live, MaxPercent: 100000}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, p, 10*time.Millisecond); close(done) }()
	wait := func(ok func(int) bool) int {
		t.Helper()
		for range 500 {
			if v := gogc(); ok(v) {
				return v
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("GOGC stayed %d", gogc())
		return 0
	}
	v := wait(func(v int) bool { return v > 1500 && v < 2500 })
	// Grow the live heap tenfold: GOGC falls to about a tenth.
	keep := make([][]byte, 0, 100)
	for range 100 {
		keep = append(keep, make([]byte, int(live)/10))
	}
	runtime.GC()
	w := wait(func(w int) bool { return w < v/4 })
	cancel()
	<-done
	runtime.KeepAlive(keep)
	t.Logf("GOGC %d with the test's heap, %d with ten times more", v, w)
}
