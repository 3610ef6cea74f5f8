package ratelimit_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-dev/gatehouse/internal/ratelimit"
)

// breakableRedis is a client of the test server whose connections can be
// made to fail (as a server that went down or a network that broke), and
// that counts the connections it opened.
type breakableRedis struct {
	*redis.Client
	broken atomic.Bool
	dials  atomic.Int64
	probes atomic.Int64 // commands on the background probe's key
}

// probeCounter is a go-redis hook that counts the probe's commands.
type probeCounter struct{ b *breakableRedis }

func (probeCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h probeCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		for _, a := range cmd.Args() {
			if a == "gatehouse:rl:probe" {
				h.b.probes.Add(1)
			}
		}
		return next(ctx, cmd)
	}
}
func (probeCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

type breakableConn struct {
	net.Conn
	b *breakableRedis
}

var errBroken = errors.New("test: the network to Redis is broken")

func (c breakableConn) Read(p []byte) (int, error) {
	if c.b.broken.Load() {
		return 0, errBroken
	}
	return c.Conn.Read(p)
}

func (c breakableConn) Write(p []byte) (int, error) {
	if c.b.broken.Load() {
		return 0, errBroken
	}
	return c.Conn.Write(p)
}

func newBreakableRedis(t *testing.T) *breakableRedis {
	t.Helper()
	real := redisClient(t) // skips without a server
	o := *real.Options()
	b := &breakableRedis{}
	o.MaxRetries = -1
	o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		b.dials.Add(1)
		if b.broken.Load() {
			return nil, errBroken
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return breakableConn{Conn: conn, b: b}, nil
	}
	b.Client = redis.NewClient(&o)
	b.Client.AddHook(probeCounter{b})
	t.Cleanup(func() { b.Client.Close() })
	return b
}

// events records what the registry tells of Redis.
type events struct {
	mu               sync.Mutex
	down, up, failed int
}

func (e *events) options(mode ratelimit.FailureMode, retry time.Duration) ratelimit.RedisOptions {
	return ratelimit.RedisOptions{
		Timeout: 200 * time.Millisecond, OnFailure: mode, Retry: retry,
		Down:   func(error) { e.mu.Lock(); e.down++; e.mu.Unlock() },
		Up:     func() { e.mu.Lock(); e.up++; e.mu.Unlock() },
		Failed: func(error) { e.mu.Lock(); e.failed++; e.mu.Unlock() },
	}
}

func (e *events) get() (down, up, failed int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.down, e.up, e.failed
}

// deny: every decision while Redis fails is an error (503), three
// failures in a row stop the decisions from asking it, a probe in the
// background asks it every retry interval, finds it back with no
// decision asked, and the bucket it kept decides again. Closed, the
// registry probes no more.
func TestRedis_FailClosedSkipsAFailingServerThenProbes(t *testing.T) {
	b := newBreakableRedis(t)
	var ev events
	reg := ratelimit.NewRedisRegistry(b, ev.options(ratelimit.FailClosed, 100*time.Millisecond))
	t.Cleanup(reg.Close)
	id := newID(t, b.Client)
	l := reg.Get(id, ratelimit.Params{Interval: time.Hour, Burst: 3}, 1000)
	ctx := context.Background()
	key := []byte("acme")
	if d, err := l.Allow(ctx, key, time.Now()); err != nil || !d.Allowed || d.Remaining != 2 {
		t.Fatalf("with Redis up: %+v, %v", d, err)
	}

	b.broken.Store(true)
	for i := range 3 {
		if d, err := l.Allow(ctx, key, time.Now()); err == nil || d.Allowed || errors.Is(err, ratelimit.ErrRedisSkipped) {
			t.Fatalf("failure %d: %+v, %v; want Redis's error", i+1, d, err)
		}
	}
	if down, _, failed := ev.get(); down != 1 || failed != 3 || reg.RedisAvailable() {
		t.Fatalf("after three failures: down %d, failed %d, available %v", down, failed, reg.RedisAvailable())
	}
	dials := b.dials.Load()
	start := time.Now()
	for range 50 {
		if _, err := l.Allow(ctx, key, time.Now()); !errors.Is(err, ratelimit.ErrRedisSkipped) {
			t.Fatalf("while skipping: %v", err)
		}
	}
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Fatalf("50 skipped decisions took %v", took)
	}

	// Past several retry intervals the probe has asked and failed; the
	// decisions skip on, none of them waiting, with no second "down".
	time.Sleep(350 * time.Millisecond)
	if n := b.probes.Load(); n < 1 || n > 5 {
		t.Fatalf("%d probes in 350 ms; want one every 100 ms", n)
	}
	if b.dials.Load() == dials {
		t.Fatal("the probes did not reach the network")
	}
	start = time.Now()
	if _, err := l.Allow(ctx, key, time.Now()); !errors.Is(err, ratelimit.ErrRedisSkipped) || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("a decision past the retry interval: %v after %v; want skipped at once (the probe is in the background)", err, time.Since(start))
	}

	// Redis back: the probe finds it with no decision asked.
	b.broken.Store(false)
	waitAvailable(t, reg)
	if down, up, failed := ev.get(); down != 1 || up != 1 || failed != 3 {
		t.Fatalf("after recovery: down %d, up %d, failed %d (probes are not decisions)", down, up, failed)
	}
	d, err := l.Allow(ctx, key, time.Now())
	if err != nil || !d.Allowed || d.Remaining != 1 {
		t.Fatalf("with Redis back: %+v, %v; want the bucket Redis kept (1 left)", d, err)
	}

	// Tripped again, then closed: the probe stops.
	b.broken.Store(true)
	for range 3 {
		l.Allow(ctx, key, time.Now())
	}
	reg.Close()
	probes := b.probes.Load()
	time.Sleep(250 * time.Millisecond)
	if n := b.probes.Load() - probes; n != 0 {
		t.Fatalf("a closed registry probed %d times", n)
	}
}

// waitAvailable waits for the background probe to find Redis back.
func waitAvailable(t *testing.T, reg *ratelimit.Registry) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !reg.RedisAvailable() {
		if time.Now().After(deadline) {
			t.Fatal("the probe did not find Redis back within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A limiter made alone (no registry, no background probe) lets one
// decision probe after each retry interval.
func TestRedis_AloneADecisionProbes(t *testing.T) {
	b := newBreakableRedis(t)
	l := ratelimit.NewRedis(b, newID(t, b.Client), ratelimit.Params{Interval: time.Hour, Burst: 3}, 100*time.Millisecond)
	ctx := context.Background()
	b.broken.Store(true)
	for range 3 {
		l.Allow(ctx, []byte("k"), time.Now())
	}
	if _, err := l.Allow(ctx, []byte("k"), time.Now()); !errors.Is(err, ratelimit.ErrRedisSkipped) {
		t.Fatalf("after three failures: %v", err)
	}
	b.broken.Store(false)
	time.Sleep(time.Second + 100*time.Millisecond) // DefaultRedisRetry
	if d, err := l.Allow(ctx, []byte("k"), time.Now()); err != nil || !d.Allowed {
		t.Fatalf("the probe with Redis back: %+v, %v", d, err)
	}
}

// One slow or failed reply alone does not stop the decisions from asking
// Redis: a success in between starts the count again.
func TestRedis_IsolatedFailuresDoNotTrip(t *testing.T) {
	b := newBreakableRedis(t)
	var ev events
	reg := ratelimit.NewRedisRegistry(b, ev.options(ratelimit.FailClosed, time.Hour))
	t.Cleanup(reg.Close)
	l := reg.Get(newID(t, b.Client), ratelimit.Params{Interval: time.Millisecond, Burst: 1000}, 1000)
	ctx := context.Background()
	for range 5 {
		for range 2 {
			b.broken.Store(true)
			if _, err := l.Allow(ctx, []byte("k"), time.Now()); err == nil {
				t.Fatal("no error with the network broken")
			}
		}
		b.broken.Store(false)
		if _, err := l.Allow(ctx, []byte("k"), time.Now()); err != nil {
			t.Fatalf("with Redis up: %v", err)
		}
	}
	if down, _, failed := ev.get(); down != 0 || failed != 10 || !reg.RedisAvailable() {
		t.Fatalf("down %d failed %d available %v", down, failed, reg.RedisAvailable())
	}
}

// local: while Redis fails the gateway decides in its own memory, with the
// limit's parameters (a reload's new ones too), and Redis's bucket is
// used again once it answers.
func TestRedis_FailLocalDecidesInMemory(t *testing.T) {
	b := newBreakableRedis(t)
	var ev events
	reg := ratelimit.NewRedisRegistry(b, ev.options(ratelimit.FailLocal, 50*time.Millisecond))
	t.Cleanup(reg.Close)
	id := newID(t, b.Client)
	p := ratelimit.Params{Interval: time.Hour, Burst: 4}
	l := reg.Get(id, p, 1000)
	ctx := context.Background()
	for range 4 { // Redis's bucket: used up
		if d, err := l.Allow(ctx, []byte("acme"), time.Now()); err != nil || !d.Allowed {
			t.Fatalf("with Redis up: %+v, %v", d, err)
		}
	}
	b.broken.Store(true)
	now := time.Now()
	for i := range 6 {
		d, err := l.Allow(ctx, []byte("acme"), now)
		if err != nil {
			t.Fatalf("decision %d: %v; want a local decision", i+1, err)
		}
		if want := i < 4; d.Allowed != want {
			t.Fatalf("decision %d in memory: allowed %v, want %v (%+v)", i+1, d.Allowed, want, d)
		}
	}
	// Other keys have buckets of their own, with a reload's parameters.
	reg.Get(id, ratelimit.Params{Interval: time.Hour, Burst: 1}, 1000)
	if d, _ := l.Allow(ctx, []byte("other"), now); !d.Allowed {
		t.Fatal("another key refused")
	}
	if d, _ := l.Allow(ctx, []byte("other"), now); d.Allowed {
		t.Fatal("the reload's burst of 1 is not applied locally")
	}
	if down, _, _ := ev.get(); down != 1 {
		t.Fatalf("down told %d times", down)
	}
	b.broken.Store(false)
	waitAvailable(t, reg)
	if d, err := l.Allow(ctx, []byte("acme"), time.Now()); err != nil || d.Allowed {
		t.Fatalf("with Redis back: %+v, %v; want Redis's used-up bucket", d, err)
	}
	if _, up, _ := ev.get(); up != 1 {
		t.Fatalf("up told %d times", up)
	}
}

// allow: while Redis fails every decision lets the request through,
// marked unchecked; Redis's bucket decides again once it answers.
func TestRedis_FailOpenLetsThroughUnchecked(t *testing.T) {
	b := newBreakableRedis(t)
	var ev events
	reg := ratelimit.NewRedisRegistry(b, ev.options(ratelimit.FailOpen, 50*time.Millisecond))
	t.Cleanup(reg.Close)
	l := reg.Get(newID(t, b.Client), ratelimit.Params{Interval: time.Hour, Burst: 2}, 1000)
	ctx := context.Background()
	for i := range 3 {
		d, err := l.Allow(ctx, []byte("acme"), time.Now())
		if err != nil || d.Allowed != (i < 2) || d.Unchecked {
			t.Fatalf("decision %d with Redis up: %+v, %v", i+1, d, err)
		}
	}
	b.broken.Store(true)
	for i := range 10 {
		d, err := l.Allow(ctx, []byte("acme"), time.Now())
		if err != nil || !d.Allowed || !d.Unchecked {
			t.Fatalf("decision %d with Redis down: %+v, %v; want allowed, unchecked", i+1, d, err)
		}
	}
	if down, _, failed := ev.get(); down != 1 || failed != 3 {
		t.Fatalf("down told %d times, failed %d; want 1 and 3 (then skipped)", down, failed)
	}
	b.broken.Store(false)
	waitAvailable(t, reg)
	if d, err := l.Allow(ctx, []byte("acme"), time.Now()); err != nil || d.Allowed || d.Unchecked {
		t.Fatalf("with Redis back: %+v, %v; want Redis's used-up bucket", d, err)
	}
}

// A decision whose request was cancelled is not Redis's failure.
func TestRedis_ACancelledRequestIsNotAFailure(t *testing.T) {
	b := newBreakableRedis(t)
	var ev events
	reg := ratelimit.NewRedisRegistry(b, ev.options(ratelimit.FailLocal, time.Hour))
	t.Cleanup(reg.Close)
	l := reg.Get(newID(t, b.Client), ratelimit.Params{Interval: time.Second, Burst: 5}, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 5 {
		if _, err := l.Allow(ctx, []byte("k"), time.Now()); err == nil {
			t.Fatal("a cancelled decision succeeded")
		}
	}
	if down, _, failed := ev.get(); down != 0 || failed != 0 {
		t.Fatalf("down %d, failed %d", down, failed)
	}
}

// A limit's own FailureMode replaces the registry's, and a reload (the
// apply of PrepareMode) changes it: here the registry fails closed, one
// limit fails open, another goes local, and a reload turns the closed
// one local and the open one back to the registry's.
func TestRedis_ALimitsOwnFailureMode(t *testing.T) {
	b := newBreakableRedis(t)
	var ev events
	reg := ratelimit.NewRedisRegistry(b, ev.options(ratelimit.FailClosed, time.Hour))
	t.Cleanup(reg.Close)
	p := ratelimit.Params{Interval: time.Hour, Burst: 2}
	closedID, openID, localID := newID(t, b.Client), newID(t, b.Client), newID(t, b.Client)
	closed, _ := reg.PrepareMode(closedID, p, 100, ratelimit.FailDefault)
	open, _ := reg.PrepareMode(openID, p, 100, ratelimit.FailOpen)
	local, _ := reg.PrepareMode(localID, p, 100, ratelimit.FailLocal)
	ctx := context.Background()
	b.broken.Store(true)
	decide := func(l ratelimit.Limiter) string {
		d, err := l.Allow(ctx, []byte("k"), time.Now())
		switch {
		case err != nil:
			return "error"
		case d.Unchecked:
			return "unchecked"
		case d.Allowed:
			return "allowed"
		}
		return "refused"
	}
	for i := range 3 {
		if got := [3]string{decide(closed), decide(open), decide(local)}; got != [3]string{"error", "unchecked", [...]string{"allowed", "allowed", "refused"}[i]} {
			t.Fatalf("decision %d with Redis down (closed, open, local): %v", i+1, got)
		}
	}
	if _, apply := reg.PrepareMode(closedID, p, 100, ratelimit.FailDefault); apply != nil {
		t.Fatal("an unchanged mode gave an apply")
	}
	_, toLocal := reg.PrepareMode(closedID, p, 100, ratelimit.FailLocal)
	_, toDefault := reg.PrepareMode(openID, p, 100, ratelimit.FailDefault)
	if toLocal == nil || toDefault == nil {
		t.Fatal("a changed mode gave no apply")
	}
	if decide(closed) != "error" || decide(open) != "unchecked" {
		t.Fatal("a mode changed before its apply")
	}
	toLocal()
	toDefault()
	if got := [2]string{decide(closed), decide(open)}; got != [2]string{"allowed", "error"} {
		t.Fatalf("after the reload (closed→local, open→the registry's): %v", got)
	}
}
