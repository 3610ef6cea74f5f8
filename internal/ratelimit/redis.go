package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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
// sent once and then called by its hash). It fails closed: an error (the
// server down, the timeout passed) is returned, and the rate-limit step
// refuses the request with 503. Its Params may change while it is in use,
// like Memory's; keys are hashed, so a request's key of any length costs
// Redis a fixed 60 bytes or so.
type Redis struct {
	client  redis.Scripter
	prefix  string // names the limit; the key's hash follows
	timeout time.Duration
	params  atomic.Pointer[Params]
}

// DefaultRedisTimeout bounds one decision when none is given.
const DefaultRedisTimeout = 100 * time.Millisecond

// NewRedis returns a limiter for the limit id in client's database.
// timeout bounds each decision (DefaultRedisTimeout if 0).
func NewRedis(client redis.Scripter, id ID, p Params, timeout time.Duration) *Redis {
	if timeout <= 0 {
		timeout = DefaultRedisTimeout
	}
	sum := sha256.Sum256([]byte(id.API + "\x00" + id.Operation + "\x00" + id.Name + "\x00" + id.Key))
	r := &Redis{client: client, prefix: "gatehouse:rl:" + hex.EncodeToString(sum[:8]) + ":", timeout: timeout}
	r.params.Store(&p)
	return r
}

// SetParams replaces the limit's parameters (a reload); buckets stay.
func (r *Redis) SetParams(p Params) { r.params.Store(&p) }

// Params returns the limit's parameters.
func (r *Redis) Params() Params { return *r.params.Load() }

// Allow implements Limiter. now is not used: the Redis server's clock
// decides, the same for every gateway.
func (r *Redis) Allow(ctx context.Context, key []byte, _ time.Time) (Decision, error) {
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
