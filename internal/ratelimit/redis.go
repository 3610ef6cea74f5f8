package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript is decide (gcra.go) run inside Redis, on the server's clock,
// so that every gateway sharing the server counts in one bucket whatever
// their own clocks say. Times are microseconds: Lua's numbers are doubles,
// exact to 2^53, which nanoseconds since 1970 exceed. KEYS[1] is the
// bucket; ARGV[1] the interval and ARGV[2] the burst. It returns allowed
// (0 or 1), remaining, retry-after and reset (microseconds). The bucket
// expires once it would be full again, so idle keys cost Redis nothing.
var gcraScript = redis.NewScript(`
local iv = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local window = burst * iv
local base = math.max(tat, now)
local nxt = base + iv
local debt = nxt - now
if debt > window then
	return {0, 0, debt - window, base - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil(debt / 1000) + 1)
return {1, math.floor((window - debt) / iv), 0, debt}
`)

// Redis is a limiter whose buckets live in Redis, shared by every gateway
// that uses the same server: one round trip per decision (the script is
// sent once and then called by its hash). Its Params may change while it
// is in use, like Memory's; keys are hashed, so a request's key of any
// length costs Redis a fixed 60 bytes or so.
//
// When Redis fails (down, or slower than the timeout), what happens is
// the registry's FailureMode: FailClosed returns the error, and the
// rate-limit step refuses the request with 503; FailLocal decides in this
// gateway's memory instead, with the same parameters; FailOpen lets the
// request through without a limit. After
// failuresToTrip failed decisions in a row, decisions stop asking Redis
// (they fail, go local or go through at once, rather than each waiting
// for the timeout) until a probe finds it answering: in a registry's
// limiters the probe runs in the background every RedisOptions.Retry,
// so that no request waits on a failing Redis and its recovery is seen
// without traffic; a limiter made alone (NewRedis) lets one decision
// probe after each Retry.
type Redis struct {
	client  redis.Scripter
	prefix  string // names the limit; the key's hash follows
	timeout time.Duration
	params  atomic.Pointer[Params]
	health  *redisHealth
	maxKeys int
	mode    atomic.Uint32 // the FailureMode in effect: never FailDefault
	// local holds the buckets used while Redis fails under FailLocal,
	// made when the limit first has that mode (and kept).
	local atomic.Pointer[Memory]
}

// DefaultRedisTimeout bounds one decision when none is given.
const DefaultRedisTimeout = 100 * time.Millisecond

// DefaultRedisRetry is how long decisions skip Redis after it failed.
const DefaultRedisRetry = time.Second

// failuresToTrip is how many failed decisions in a row make decisions
// skip Redis for a while: one slow reply alone does not.
const failuresToTrip = 3

// FailureMode is what a Redis limiter does when Redis fails.
type FailureMode uint8

// Failure modes.
const (
	// FailDefault is, for one limit, the registry's mode; for a
	// registry, FailClosed.
	FailDefault FailureMode = iota
	// FailClosed returns the error: the request is refused (503).
	FailClosed
	// FailLocal decides in the gateway's own memory: each gateway then
	// allows up to the limit on its own, so N gateways up to N times it.
	FailLocal
	// FailOpen allows the request without checking the limit (a
	// Decision with Unchecked set) until Redis answers again.
	FailOpen
)

// ErrRedisSkipped is the error of a decision that did not ask Redis
// because it failed moments ago.
var ErrRedisSkipped = errors.New("rate limit in Redis: not asked, it failed less than a retry interval ago")

// RedisOptions configure the Redis limiters of a registry.
type RedisOptions struct {
	// Timeout bounds one decision (DefaultRedisTimeout if 0).
	Timeout time.Duration
	// OnFailure is what a decision does when Redis fails.
	OnFailure FailureMode
	// Retry is how long decisions skip Redis once it failed
	// failuresToTrip times in a row (DefaultRedisRetry if 0).
	Retry time.Duration
	// Down is told when decisions start skipping Redis, Up when a probe
	// finds it answering again, Failed of every failed decision (an
	// error, or no answer within Timeout), Skipped of every decision
	// that did not ask it (for the log and metrics; each may be nil).
	// They are called on the request path: they must not block.
	Down    func(err error)
	Up      func()
	Failed  func(err error)
	Skipped func()
}

// redisHealth is what the limiters of one Redis client know of it.
type redisHealth struct {
	o RedisOptions
	// downUntil is when the next probe may ask Redis (monotonic
	// nanoseconds); 0 while decisions ask it.
	downUntil atomic.Int64
	failures  atomic.Int32 // failed decisions in a row

	// probe, when set (a registry's), asks Redis in the background while
	// decisions skip it; none of them is the probe then.
	probe   func(context.Context) error
	mu      sync.Mutex
	probing bool // a probe loop runs (mu)
	closed  bool // (mu)
	done    chan struct{}
	wg      sync.WaitGroup
}

// probeKey is the bucket the background probe runs the decision's script
// on (an interval of 1 µs and a burst of 1: it expires within 2 ms), so
// that it checks what a decision needs, writes included: a primary
// turned replica answers PING but refuses the script.
const probeKey = "gatehouse:rl:probe"

// startProbe starts the background probe, unless one runs.
func (h *redisHealth) startProbe() {
	if h.probe == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.probing || h.closed {
		return
	}
	h.probing = true
	h.wg.Add(1)
	go h.runProbe()
}

// runProbe asks Redis every Retry until it answers, then lets the
// decisions ask it again.
func (h *redisHealth) runProbe() {
	defer h.wg.Done()
	t := time.NewTicker(h.o.Retry)
	defer t.Stop()
	for {
		select {
		case <-h.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.o.Timeout)
		err := h.probe(ctx)
		cancel()
		if err == nil {
			// Not probing before the decisions may trip again: a trip
			// from now on starts a loop of its own.
			h.mu.Lock()
			h.probing = false
			h.mu.Unlock()
			h.ok()
			return
		}
	}
}

// close stops the background probe and waits for it.
func (h *redisHealth) close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

func newRedisHealth(o RedisOptions) *redisHealth {
	if o.Timeout <= 0 {
		o.Timeout = DefaultRedisTimeout
	}
	if o.Retry <= 0 {
		o.Retry = DefaultRedisRetry
	}
	if o.OnFailure == FailDefault {
		o.OnFailure = FailClosed
	}
	return &redisHealth{o: o, done: make(chan struct{})}
}

// skip reports whether a decision at now should not ask Redis. Without a
// background probe, when the retry interval has passed, one caller is let
// through as the probe.
func (h *redisHealth) skip(now int64) bool {
	d := h.downUntil.Load()
	if d == 0 {
		return false
	}
	if now < d || h.probe != nil {
		return true
	}
	return !h.downUntil.CompareAndSwap(d, now+int64(h.o.Retry))
}

func (h *redisHealth) failed(now int64, err error) {
	if f := h.o.Failed; f != nil {
		f(err)
	}
	for {
		d := h.downUntil.Load()
		if d == 0 {
			break // not skipping (or a success just ended it): count
		}
		if h.downUntil.CompareAndSwap(d, now+int64(h.o.Retry)) {
			return // a failed probe: skip on
		}
	}
	if h.failures.Add(1) >= failuresToTrip && h.downUntil.CompareAndSwap(0, now+int64(h.o.Retry)) {
		if f := h.o.Down; f != nil {
			f(err)
		}
		h.startProbe()
	}
}

// monoBase and monoNow measure the retry interval on the monotonic
// clock, so that a step of the system clock neither stops the probes nor
// hurries them.
var monoBase = time.Now()

func monoNow() int64 { return int64(time.Since(monoBase)) }

func (h *redisHealth) ok() {
	if h.failures.Load() != 0 {
		h.failures.Store(0)
	}
	if h.downUntil.Load() != 0 && h.downUntil.Swap(0) != 0 {
		if f := h.o.Up; f != nil {
			f()
		}
	}
}

// RedisAvailable reports whether decisions ask Redis (false while they skip
// it after failures).
func (r *Registry) RedisAvailable() bool {
	return r.health == nil || r.health.downUntil.Load() == 0
}

// NewRedis returns a limiter for the limit id in client's database.
// timeout bounds each decision (DefaultRedisTimeout if 0); it fails
// closed. A registry's limiters (NewRedisRegistry) share what they know
// of the client, and its FailureMode.
func NewRedis(client redis.Scripter, id ID, p Params, timeout time.Duration) *Redis {
	return newRedis(client, id, p, newRedisHealth(RedisOptions{Timeout: timeout}), 0, FailClosed)
}

func newRedis(client redis.Scripter, id ID, p Params, h *redisHealth, maxKeys int, mode FailureMode) *Redis {
	sum := sha256.Sum256([]byte(id.API + "\x00" + id.Operation + "\x00" + id.Name + "\x00" + id.Key))
	r := &Redis{client: client, prefix: "gatehouse:rl:" + hex.EncodeToString(sum[:8]) + ":", timeout: h.o.Timeout, health: h, maxKeys: max(maxKeys, 1)}
	r.params.Store(&p)
	r.SetMode(mode)
	return r
}

// SetParams replaces the limit's parameters (a reload); buckets stay.
func (r *Redis) SetParams(p Params) {
	r.params.Store(&p)
	if l := r.local.Load(); l != nil {
		l.SetParams(p)
	}
}

// Mode returns the FailureMode in effect for the limit.
func (r *Redis) Mode() FailureMode { return FailureMode(r.mode.Load()) }

// SetMode sets what the limit does when Redis fails (a reload);
// FailDefault is the registry's mode.
func (r *Redis) SetMode(m FailureMode) {
	m = r.resolve(m)
	if m == FailLocal && r.local.Load() == nil {
		r.local.CompareAndSwap(nil, NewMemory(*r.params.Load(), r.maxKeys)) // the limit's max_keys
	}
	r.mode.Store(uint32(m))
}

func (r *Redis) resolve(m FailureMode) FailureMode {
	if m == FailDefault {
		return r.health.o.OnFailure
	}
	return m
}

// Params returns the limit's parameters.
func (r *Redis) Params() Params { return *r.params.Load() }

// Allow implements Limiter. now is not used by Redis (its own clock
// decides, the same for every gateway), only by the local buckets of
// FailLocal; the retry interval is on the monotonic clock.
func (r *Redis) Allow(ctx context.Context, key []byte, now time.Time) (Decision, error) {
	if now.IsZero() {
		now = time.Now()
	}
	if r.health.downUntil.Load() != 0 && r.health.skip(monoNow()) {
		if f := r.health.o.Skipped; f != nil {
			f()
		}
		return r.fallback(ctx, key, now, ErrRedisSkipped)
	}
	d, err := r.ask(ctx, key)
	if err != nil {
		if ctx.Err() != nil {
			return Decision{}, err // the request was cancelled: not Redis's failure
		}
		// From when the failure was known: a timeout took its time.
		r.health.failed(monoNow(), err)
		return r.fallback(ctx, key, now, err)
	}
	r.health.ok()
	return d, nil
}

// fallback decides without Redis: locally, not at all (err), or lets the
// request through unchecked.
func (r *Redis) fallback(ctx context.Context, key []byte, now time.Time, err error) (Decision, error) {
	switch r.Mode() {
	case FailLocal:
		return r.local.Load().Allow(ctx, key, now)
	case FailOpen:
		return Decision{Allowed: true, Unchecked: true}, nil
	}
	return Decision{}, err
}

// ask runs the decision in Redis.
func (r *Redis) ask(ctx context.Context, key []byte) (Decision, error) {
	p := r.params.Load()
	iv := max(int64(p.Interval/time.Microsecond), 1)
	sum := sha256.Sum256(key)
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	res, err := gcraScript.Run(ctx, r.client, []string{r.prefix + hex.EncodeToString(sum[:16])}, iv, p.Burst).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("rate limit in Redis: %w", err)
	}
	if len(res) != 4 {
		return Decision{}, errors.New("rate limit in Redis: the script returned an unexpected reply")
	}
	return Decision{
		Allowed:    res[0] == 1,
		Remaining:  res[1],
		RetryAfter: time.Duration(res[2]) * time.Microsecond,
		Reset:      time.Duration(res[3]) * time.Microsecond,
	}, nil
}

// Prefix is the start of the names of the limit's buckets in Redis.
func (r *Redis) Prefix() string { return r.prefix }
