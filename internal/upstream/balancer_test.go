package upstream

import (
	"fmt"
	"math"
	"sync/atomic"
	"testing"
)

// testEndpoints returns endpoints http://10.0.0.<i>:80 with the given
// weights (1 when omitted).
func testEndpoints(n int, weights ...int) []*Endpoint {
	eps := make([]*Endpoint, n)
	for i := range eps {
		host := fmt.Sprintf("10.0.0.%d:80", i+1)
		e := &Endpoint{Instance: Instance{ID: "http://" + host, Scheme: "http", Host: host}}
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		e.weight.Store(int32(w))
		eps[i] = e
	}
	return eps
}

func countPicks(b Balancer, n int, key func(i int) (uint64, bool)) map[*Endpoint]int {
	got := map[*Endpoint]int{}
	for i := range n {
		k, ok := uint64(0), false
		if key != nil {
			k, ok = key(i)
		}
		got[b.Pick(k, ok, nil)]++
	}
	return got
}

func TestRoundRobin_TakesTurns(t *testing.T) {
	eps := testEndpoints(3)
	b := NewBalancer(RoundRobin, eps, new(atomic.Uint64))
	got := countPicks(b, 300, nil)
	for _, e := range eps {
		if got[e] != 100 {
			t.Errorf("%s picked %d times, want 100", e.ID, got[e])
		}
	}
}

func TestBalancers_AvoidTriedEndpoints(t *testing.T) {
	for _, alg := range []Algorithm{RoundRobin, Weighted, LeastRequests, ConsistentHash} {
		t.Run(alg.String(), func(t *testing.T) {
			eps := testEndpoints(3, 1, 2, 3)
			b := NewBalancer(alg, eps, new(atomic.Uint64))
			for i := range 100 {
				key := HashString(fmt.Sprint(i))
				got := b.Pick(key, true, eps[:2])
				if got != eps[2] {
					t.Fatalf("pick %d avoiding two of three: got %v, want %s", i, got, eps[2].ID)
				}
			}
			if got := b.Pick(1, true, eps); got != nil {
				t.Fatalf("every endpoint avoided: got %s, want nil", got.ID)
			}
			if got := NewBalancer(alg, nil, new(atomic.Uint64)).Pick(1, true, nil); got != nil {
				t.Fatalf("empty balancer picked %s", got.ID)
			}
		})
	}
}

func TestWeighted_DistributionFollowsWeights(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
	}{
		{"equal", []int{1, 1, 1}},
		{"five_one_one", []int{5, 1, 1}},
		{"mixed", []int{100, 3, 7, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eps := testEndpoints(len(tc.weights), tc.weights...)
			b := NewBalancer(Weighted, eps, new(atomic.Uint64))
			total := 0
			for _, w := range tc.weights {
				total += w
			}
			const rounds = 50
			got := countPicks(b, rounds*total, nil)
			for i, e := range eps {
				// Smooth weighted round robin is exact over whole rounds.
				if want := rounds * tc.weights[i]; got[e] != want {
					t.Errorf("%s (weight %d) picked %d times, want %d", e.ID, tc.weights[i], got[e], want)
				}
			}
		})
	}
}

// Smooth: a heavy endpoint's picks are spread out, not in a burst.
func TestWeighted_IsSmooth(t *testing.T) {
	eps := testEndpoints(3, 5, 1, 1)
	b := NewBalancer(Weighted, eps, new(atomic.Uint64))
	run, longest := 0, 0
	for range 70 {
		if b.Pick(0, false, nil) == eps[0] {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	// The sequence of a round is a a b a c a a: runs of 2 inside a round,
	// 4 across two rounds; a plain weighted round robin would give 5.
	if longest > 4 {
		t.Fatalf("weight-5 endpoint picked %d times in a row; smooth WRR spreads it (at most 4 for 5:1:1)", longest)
	}
}

func TestLeastRequests_PrefersFewerInFlight(t *testing.T) {
	eps := testEndpoints(3)
	eps[0].inFlight.Store(50)
	b := NewBalancer(LeastRequests, eps, new(atomic.Uint64))
	got := countPicks(b, 3000, nil)
	if got[eps[0]] != 0 {
		t.Errorf("busy endpoint picked %d times; of any two, the other is less loaded", got[eps[0]])
	}
	for _, e := range eps[1:] {
		if got[e] < 1200 {
			t.Errorf("%s picked %d of 3000 times; want about half", e.ID, got[e])
		}
	}
}

func TestLeastRequests_WeightScalesLoad(t *testing.T) {
	eps := testEndpoints(2, 4, 1)
	eps[0].inFlight.Store(6) // 6/4 = 1.5 per weight
	eps[1].inFlight.Store(2) // 2/1 = 2 per weight
	b := NewBalancer(LeastRequests, eps, new(atomic.Uint64))
	for range 100 {
		if got := b.Pick(0, false, nil); got != eps[0] {
			t.Fatalf("picked %s; the weight-4 endpoint has less load per weight", got.ID)
		}
	}
}

func TestConsistentHash_SameKeySameInstance(t *testing.T) {
	eps := testEndpoints(5)
	b := NewBalancer(ConsistentHash, eps, new(atomic.Uint64))
	rebuilt := NewBalancer(ConsistentHash, testEndpoints(5), new(atomic.Uint64))
	for i := range 1000 {
		k := HashString(fmt.Sprintf("session-%d", i))
		first := b.Pick(k, true, nil)
		for range 3 {
			if again := b.Pick(k, true, nil); again != first {
				t.Fatalf("key %d moved from %s to %s", i, first.ID, again.ID)
			}
		}
		// Another gateway (or a rebuild) with the same instances agrees.
		if other := rebuilt.Pick(k, true, nil); other.ID != first.ID {
			t.Fatalf("key %d: %s here, %s on a rebuilt ring", i, first.ID, other.ID)
		}
	}
}

func TestConsistentHash_MinimalRemapping(t *testing.T) {
	const keys = 20000
	eps := testEndpoints(6)
	before := NewBalancer(ConsistentHash, eps[:5], new(atomic.Uint64))
	removed := NewBalancer(ConsistentHash, append(append([]*Endpoint{}, eps[:2]...), eps[3:5]...), new(atomic.Uint64))
	added := NewBalancer(ConsistentHash, eps, new(atomic.Uint64))
	movedOnRemove, movedOnAdd, toNew := 0, 0, 0
	share := map[*Endpoint]int{}
	for i := range keys {
		k := HashString(fmt.Sprintf("user-%d", i))
		was := before.Pick(k, true, nil)
		share[was]++
		if now := removed.Pick(k, true, nil); now != was {
			movedOnRemove++
			if was != eps[2] {
				t.Fatalf("key %d moved from %s, which was not removed, to %s", i, was.ID, now.ID)
			}
		}
		if now := added.Pick(k, true, nil); now != was {
			movedOnAdd++
			if now == eps[5] {
				toNew++
			}
		}
	}
	if movedOnRemove != share[eps[2]] {
		t.Errorf("removing one instance moved %d keys; it owned %d", movedOnRemove, share[eps[2]])
	}
	if toNew != movedOnAdd {
		t.Errorf("adding an instance moved %d keys, only %d of them to the new instance", movedOnAdd, toNew)
	}
	if frac := float64(movedOnAdd) / keys; frac < 0.10 || frac > 0.25 {
		t.Errorf("adding a 6th instance moved %.1f%% of keys, want about 1/6", 100*frac)
	}
	for e, n := range share {
		if frac := float64(n) / keys; math.Abs(frac-0.2) > 0.06 {
			t.Errorf("%s owns %.1f%% of keys, want about 20%%", e.ID, 100*frac)
		}
	}
	t.Logf("remove 1 of 5: %d/%d keys moved (%.1f%%); add a 6th: %d moved (%.1f%%)",
		movedOnRemove, keys, 100*float64(movedOnRemove)/keys, movedOnAdd, 100*float64(movedOnAdd)/keys)
}

func TestConsistentHash_WeightedShare(t *testing.T) {
	eps := testEndpoints(2, 3, 1)
	b := NewBalancer(ConsistentHash, eps, new(atomic.Uint64))
	got := countPicks(b, 20000, func(i int) (uint64, bool) { return HashString(fmt.Sprint("k", i)), true })
	if frac := float64(got[eps[0]]) / 20000; math.Abs(frac-0.75) > 0.06 {
		t.Fatalf("weight-3 instance owns %.1f%% of keys, want about 75%%", 100*frac)
	}
}

func TestConsistentHash_NoKeyFallsBackToRoundRobin(t *testing.T) {
	eps := testEndpoints(3)
	b := NewBalancer(ConsistentHash, eps, new(atomic.Uint64))
	got := countPicks(b, 300, nil)
	for _, e := range eps {
		if got[e] != 100 {
			t.Errorf("%s picked %d times without a key, want 100 (round robin)", e.ID, got[e])
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, alg := range []Algorithm{RoundRobin, Weighted, LeastRequests, ConsistentHash} {
		b.Run(alg.String(), func(b *testing.B) {
			eps := testEndpoints(8, 1, 2, 3, 4, 1, 2, 3, 4)
			bal := NewBalancer(alg, eps, new(atomic.Uint64))
			b.ReportAllocs()
			var k uint64
			for b.Loop() {
				k += 0x9e3779b97f4a7c15
				if bal.Pick(k, true, nil) == nil {
					b.Fatal("nil pick")
				}
			}
		})
	}
	b.Run("consistent_hash_retry", func(b *testing.B) {
		eps := testEndpoints(8)
		bal := NewBalancer(ConsistentHash, eps, new(atomic.Uint64))
		avoid := eps[:1]
		b.ReportAllocs()
		var k uint64
		for b.Loop() {
			k += 0x9e3779b97f4a7c15
			bal.Pick(k, true, avoid)
		}
	})
}
