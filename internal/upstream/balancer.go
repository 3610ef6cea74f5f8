package upstream

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Balancer picks one endpoint among the eligible endpoints it was built
// over. A pool builds a new Balancer whenever its eligible set changes
// (membership, health, ejection), so a Balancer never sees an endpoint
// that must not get traffic. Pick is called concurrently.
type Balancer interface {
	// Pick returns an endpoint that is not in avoid, or nil when every
	// endpoint is in avoid. key is the hash of the request's affinity key
	// and hasKey says whether the request has one; only consistent
	// hashing uses them.
	Pick(key uint64, hasKey bool, avoid []*Endpoint) *Endpoint
}

// Algorithm names a load-balancing algorithm.
type Algorithm uint8

// Algorithms.
const (
	RoundRobin Algorithm = iota
	Weighted
	LeastRequests
	ConsistentHash
)

var algorithmNames = [...]string{"round_robin", "weighted", "least_requests", "consistent_hash"}

// String returns the configuration name of a.
func (a Algorithm) String() string {
	if int(a) < len(algorithmNames) {
		return algorithmNames[a]
	}
	return fmt.Sprintf("Algorithm(%d)", a)
}

// ParseAlgorithm maps a configuration name to an Algorithm.
func ParseAlgorithm(s string) (Algorithm, bool) {
	if s == "" {
		return RoundRobin, true
	}
	i := slices.Index(algorithmNames[:], s)
	return Algorithm(i), i >= 0
}

// NewBalancer builds the balancer of algorithm a over eligible. counter is
// the round-robin position; the pool keeps it across rebuilds so that a
// health change does not send the next requests to the first endpoint.
func NewBalancer(a Algorithm, eligible []*Endpoint, counter *atomic.Uint64) Balancer {
	switch a {
	case Weighted:
		return newWeighted(eligible)
	case LeastRequests:
		return &leastRequests{eps: eligible}
	case ConsistentHash:
		return newRing(eligible, counter)
	default:
		return &roundRobin{eps: eligible, next: counter}
	}
}

func avoided(avoid []*Endpoint, e *Endpoint) bool {
	for _, a := range avoid {
		if a == e {
			return true
		}
	}
	return false
}

// roundRobin takes the endpoints in turn.
type roundRobin struct {
	eps  []*Endpoint
	next *atomic.Uint64
}

func (b *roundRobin) Pick(_ uint64, _ bool, avoid []*Endpoint) *Endpoint {
	n := uint64(len(b.eps))
	if n == 0 {
		return nil
	}
	// A retry does not advance the turn, so that retries do not skew
	// the rotation: it starts at the next endpoint in turn.
	var start uint64
	if len(avoid) == 0 {
		start = b.next.Add(1) - 1
	} else {
		start = b.next.Load()
	}
	for i := range n {
		if e := b.eps[(start+i)%n]; !avoided(avoid, e) {
			return e
		}
	}
	return nil
}

// weighted is smooth weighted round robin (the nginx algorithm): on each
// pick every endpoint's current value grows by its weight, the largest
// wins and loses the total. Over any run of sum(weights) picks each
// endpoint is chosen exactly weight times, spread out rather than in
// bursts.
type weighted struct {
	mu      sync.Mutex
	eps     []*Endpoint
	weights []int64
	current []int64
}

func newWeighted(eps []*Endpoint) *weighted {
	w := &weighted{eps: eps, weights: make([]int64, len(eps)), current: make([]int64, len(eps))}
	for i, e := range eps {
		w.weights[i] = int64(e.Weight())
	}
	return w
}

func (b *weighted) Pick(_ uint64, _ bool, avoid []*Endpoint) *Endpoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	best, total := -1, int64(0)
	for i, e := range b.eps {
		if avoided(avoid, e) {
			continue
		}
		b.current[i] += b.weights[i]
		total += b.weights[i]
		if best < 0 || b.current[i] > b.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	b.current[best] -= total
	return b.eps[best]
}

// leastRequests is the power of two choices: of two endpoints drawn at
// random, the one with fewer requests in flight per unit of weight wins.
type leastRequests struct {
	eps []*Endpoint
}

func (b *leastRequests) Pick(_ uint64, _ bool, avoid []*Endpoint) *Endpoint {
	n := len(b.eps)
	if n == 0 {
		return nil
	}
	if len(avoid) == 0 {
		if n == 1 {
			return b.eps[0]
		}
		i := rand.IntN(n)
		j := rand.IntN(n - 1)
		if j >= i {
			j++
		}
		return lighter(b.eps[i], b.eps[j])
	}
	// A retry: choose among the endpoints not yet tried. Draw from a
	// random start so that ties do not always go to the same one.
	var first, second *Endpoint
	start := rand.IntN(n)
	for k := range n {
		e := b.eps[(start+k)%n]
		if avoided(avoid, e) {
			continue
		}
		if first == nil {
			first = e
		} else {
			second = e
			break
		}
	}
	if second == nil {
		return first
	}
	return lighter(first, second)
}

// lighter compares in-flight/weight without division.
func lighter(a, b *Endpoint) *Endpoint {
	if b.inFlight.Load()*int64(a.Weight()) < a.inFlight.Load()*int64(b.Weight()) {
		return b
	}
	return a
}

// ring is consistent hashing on a ring of virtual nodes: each endpoint
// owns ringPointsPerWeight × weight points (scaled down so that the ring
// holds at most maxRingPoints), placed at xxhash64("<id>#<n>"); a key goes
// to the owner of the first point at or after its hash. Removing an
// endpoint moves only the keys it owned; adding one takes about 1/N of
// the keys. The positions depend only on the instance IDs, so every
// gateway replica maps a key to the same instance. A request without a
// key is balanced round robin.
type ring struct {
	points []ringPoint
	eps    []*Endpoint
	rr     roundRobin
}

type ringPoint struct {
	hash uint64
	ep   int32
}

const (
	ringPointsPerWeight = 160
	maxRingPoints       = 40_000
)

func newRing(eps []*Endpoint, counter *atomic.Uint64) *ring {
	r := &ring{eps: eps, rr: roundRobin{eps: eps, next: counter}}
	total := 0
	for _, e := range eps {
		total += e.Weight()
	}
	per := ringPointsPerWeight
	if total > 0 && total*per > maxRingPoints {
		per = max(1, maxRingPoints/total)
	}
	r.points = make([]ringPoint, 0, total*per)
	buf := make([]byte, 0, 128)
	for i, e := range eps {
		for n := range e.Weight() * per {
			buf = append(buf[:0], e.ID...)
			buf = append(buf, '#')
			buf = appendInt(buf, n)
			r.points = append(r.points, ringPoint{hash: xxhash.Sum64(buf), ep: int32(i)})
		}
	}
	slices.SortFunc(r.points, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return int(a.ep - b.ep) // identical hashes: keep the order stable
	})
	return r
}

func appendInt(b []byte, n int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

func (r *ring) Pick(key uint64, hasKey bool, avoid []*Endpoint) *Endpoint {
	if len(r.points) == 0 {
		return nil
	}
	if !hasKey {
		return r.rr.Pick(0, false, avoid)
	}
	i, _ := slices.BinarySearchFunc(r.points, key, func(p ringPoint, k uint64) int {
		switch {
		case p.hash < k:
			return -1
		case p.hash > k:
			return 1
		}
		return 0
	})
	// Walk clockwise to the first endpoint not avoided. Every endpoint
	// owns points, so one turn of the ring visits them all.
	for k := range len(r.points) {
		e := r.eps[r.points[(i+k)%len(r.points)].ep]
		if !avoided(avoid, e) {
			return e
		}
	}
	return nil
}

// HashString hashes an affinity key.
func HashString(s string) uint64 { return xxhash.Sum64String(s) }

// HashBytes hashes an affinity key.
func HashBytes(b []byte) uint64 { return xxhash.Sum64(b) }
