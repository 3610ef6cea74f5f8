// Package anomaly flags callers whose traffic departs from their own past
// or from what a well-behaved client does: a request rate far above the
// caller's own baseline, a burst of refused credentials, a sweep of paths
// that do not exist, and the first request of a caller to an operation
// marked sensitive. It can throttle a flagged caller for a while.
//
// The gateway tells the Detector about every request once its response
// is done (Observe): one hash, one sharded map lookup and a few integer
// operations, under the shard's lock. Everything slower (the log line,
// the audit record, the shared store's first-access check) runs on the
// Detector's own goroutine, fed through a bounded queue that drops, and
// counts, what it cannot take.
package anomaly

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Kind is what was unusual.
type Kind string

// The kinds of anomaly.
const (
	// KindRateSpike: more requests in a window than the caller's own
	// baseline times a factor.
	KindRateSpike Kind = "rate_spike"
	// KindAuthFailures: many requests refused with 401 or 403 in a window.
	KindAuthFailures Kind = "auth_failures"
	// KindEnumeration: many distinct paths answered 404 in a window.
	KindEnumeration Kind = "enumeration"
	// KindFirstAccess: a caller's first request to a sensitive operation.
	KindFirstAccess Kind = "first_access"
)

// Kinds lists every kind, in a fixed order.
var Kinds = []Kind{KindRateSpike, KindAuthFailures, KindEnumeration, KindFirstAccess}

// Actions an Event records.
const (
	ActionLogged    = "logged"
	ActionThrottled = "throttled"
)

// Audit actions (the audit log's action field).
const AuditActionPrefix = "anomaly."

// Event is one flagged anomaly.
type Event struct {
	Time time.Time `json:"time"`
	Kind Kind      `json:"kind"`
	// Caller names who: jwt:PROVIDER:SUBJECT, key:CONSUMER,
	// mtls:SUBJECT, or ip:ADDRESS for a caller with no verified identity.
	Caller string `json:"caller"`
	// ClientIP is the address of the request that raised it.
	ClientIP  string `json:"client_ip"`
	API       string `json:"api,omitempty"`
	Operation string `json:"operation,omitempty"`
	// Count is what was counted in the window (requests, refusals,
	// distinct paths); Baseline, for a rate spike, the caller's usual
	// requests per window.
	Count    int     `json:"count"`
	Baseline float64 `json:"baseline,omitempty"`
	// Window is the length of the counting window.
	Window time.Duration `json:"window_ns"`
	Detail string        `json:"detail"`
	// Action is logged or throttled; Until, when throttled, is when the
	// throttle ends.
	Action string    `json:"action"`
	Until  time.Time `json:"until,omitzero"`
}

// Threshold configures a detector that fires at a count per window.
type Threshold struct {
	Count    int
	Throttle bool
}

// RateSpike configures the rate-spike detector.
type RateSpike struct {
	// Factor: a window's requests above Factor times the baseline fire.
	Factor float64
	// MinRequests: a window with fewer requests never fires.
	MinRequests int
	// Baseline is the time constant of the baseline's moving average.
	Baseline time.Duration
	// Warmup: a caller seen for less than this has no baseline yet.
	Warmup   time.Duration
	Throttle bool
}

// FirstAccess configures the first-access detector.
type FirstAccess struct {
	// Remember: a caller that has not been seen on an operation for this
	// long is new to it again (the store forgets).
	Remember time.Duration
	// Learning: for this long after first-access detection was first
	// enabled (on any gateway sharing the store), first accesses are
	// remembered but not reported, so that enabling it does not flag
	// every existing caller.
	Learning time.Duration
}

// Throttle is what a throttled caller may still do.
type Throttle struct {
	Rate     int
	Period   time.Duration
	Duration time.Duration
}

// Policy is the compiled anomalies configuration of a snapshot. It is
// immutable; a reload compiles a new one and the Detector keeps its
// callers' state.
type Policy struct {
	Window      time.Duration
	RateSpike   *RateSpike
	AuthFails   *Threshold
	Enumeration *Threshold
	FirstAccess *FirstAccess
	Throttle    Throttle
	// MaxEventsPerWindow bounds the events written to the log and the
	// audit log in one window; beyond it they are only counted.
	MaxEventsPerWindow int
}

// Throttles reports whether any detector of p throttles.
func (p *Policy) Throttles() bool {
	return p != nil && ((p.RateSpike != nil && p.RateSpike.Throttle) ||
		(p.AuthFails != nil && p.AuthFails.Throttle) ||
		(p.Enumeration != nil && p.Enumeration.Throttle))
}

// Options configure a Detector.
type Options struct {
	// MaxCallers bounds the callers followed; beyond it the least
	// recently seen are forgotten (and their baselines with them).
	MaxCallers int
	Logger     *slog.Logger
	// Audit records each event (nil: none).
	Audit *audit.Recorder
	// Seen keeps the first-access memory (nil: in memory, lost at exit).
	Seen store.Counters
	// Registerer takes the detector's metrics (nil: none).
	Registerer prometheus.Registerer
	Now        func() time.Time
	// Keep is how many recent events Recent can return. Default 500.
	Keep int
	// QueueSize bounds the events and first-access checks waiting for
	// the detector's goroutine. Default 1024.
	QueueSize int
}

// DefaultMaxCallers is the default of Options.MaxCallers.
const DefaultMaxCallers = 100_000

const shards = 16

// Detector follows callers across snapshots. Its methods are safe for
// concurrent use.
type Detector struct {
	seed   maphash.Seed
	shards [shards]shard
	// throttleEnd is the latest end of any throttle (unix ns): a request
	// after it needs no lookup to know that nobody is throttled.
	throttleEnd atomic.Int64
	queue       chan job
	logger      *slog.Logger
	audit       *audit.Recorder
	seenStore   store.Counters
	now         func() time.Time
	perShard    int

	mu     sync.Mutex
	recent []Event // ring
	next   int
	full   bool
	counts map[Kind]int64

	learnStart    atomic.Int64 // unix ns; 0: not known yet
	lastStoreWarn time.Time    // the goroutine's

	metrics *metrics
	dropped atomic.Int64

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type shard struct {
	mu sync.Mutex
	// Two generations bound the memory: when cur holds half a shard's
	// share it becomes old and a new cur starts; a caller found in old is
	// moved to cur; what is left in old when it is replaced is forgotten.
	cur, old    map[uint64]*caller
	seen, seen0 map[uint64]int64 // first-access memory (until when), the same way
}

// caller is what the detector keeps of one caller.
type caller struct {
	name string
	// The current window: its index (unix ns / winLen) and length.
	win    int64
	winLen int64
	count  int32
	fails  int32
	// notFound is a bitmap of the hashes of the paths answered 404 in
	// the window: linear counting estimates how many were distinct.
	notFound [4]uint64
	fired    uint8 // kinds fired in this window (bits)
	// baseline is the moving average of requests per window, over
	// windows windows of history.
	baseline float64
	windows  int32
	// A throttle: until (unix ns), and its GCRA state.
	until    int64
	tat      int64
	interval int64
	burst    int64
}

type job struct {
	// barrier, when set, is closed once every job before it is handled.
	barrier chan struct{}
	event   Event
	// A first-access check when name != "".
	name, api, op string
	ident         string // names the stored record: name, and the issuer for mTLS
	ip            string
	at            time.Time
	seenKey       uint64 // in the shard of the caller's key
	epoch         int64  // the span of remember the access fell in
	shard         uint64
	pol           *Policy
}

type metrics struct {
	events    *prometheus.CounterVec
	dropped   prometheus.CounterFunc
	throttled prometheus.Counter
	callers   prometheus.GaugeFunc
}

// New returns a Detector; Start runs its goroutine.
func New(o Options) *Detector {
	if o.MaxCallers <= 0 {
		o.MaxCallers = DefaultMaxCallers
	}
	if o.Keep <= 0 {
		o.Keep = 500
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Detector{
		seed:      maphash.MakeSeed(),
		queue:     make(chan job, o.QueueSize),
		logger:    o.Logger,
		audit:     o.Audit,
		seenStore: o.Seen,
		now:       o.Now,
		perShard:  max(o.MaxCallers/shards, 2),
		recent:    make([]Event, o.Keep),
		counts:    map[Kind]int64{},
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	for i := range d.shards {
		d.shards[i].cur = map[uint64]*caller{}
		d.shards[i].old = map[uint64]*caller{}
		d.shards[i].seen = map[uint64]int64{}
		d.shards[i].seen0 = map[uint64]int64{}
	}
	if o.Registerer != nil {
		d.metrics = &metrics{
			events: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "gatehouse_anomalies_total",
				Help: "Anomalies flagged, by kind (rate_spike, auth_failures, enumeration, first_access) and action (logged, throttled).",
			}, []string{"kind", "action"}),
			throttled: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "gatehouse_anomaly_throttled_requests_total",
				Help: "Requests refused with 429 because their caller was throttled after an anomaly.",
			}),
		}
		d.metrics.dropped = prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gatehouse_anomaly_queue_dropped_total",
			Help: "Anomaly events and first-access checks dropped because the detector's queue was full.",
		}, func() float64 { return float64(d.dropped.Load()) })
		d.metrics.callers = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gatehouse_anomaly_callers",
			Help: "Callers the anomaly detector follows now.",
		}, func() float64 { return float64(d.Callers()) })
		o.Registerer.MustRegister(d.metrics.events, d.metrics.dropped, d.metrics.throttled, d.metrics.callers)
		for _, k := range Kinds {
			d.metrics.events.WithLabelValues(string(k), ActionLogged)
			if k != KindFirstAccess {
				d.metrics.events.WithLabelValues(string(k), ActionThrottled)
			}
		}
	}
	if d.seenStore == nil {
		d.learnStart.Store(o.Now().UnixNano())
	}
	return d
}

// Start runs the detector's goroutine until Close.
func (d *Detector) Start() { go d.run() }

// Close stops the goroutine, after it has written what is queued (up
// to 5 s).
func (d *Detector) Close() {
	d.once.Do(func() {
		close(d.stop)
	})
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
	}
}

// Observation is what the gateway tells the detector about one request.
type Observation struct {
	Time      time.Time
	ClientIP  netip.Addr
	Principal *identity.Principal // nil: no verified caller
	API       string
	Operation string
	// Sensitive: the operation is marked sensitive (first access).
	Sensitive bool
	Status    int
	// AuthFailure: the gateway refused the request's credentials (401)
	// or its authorization (403). A backend's own 401 or 403, an IP
	// list's or a CORS refusal is not one.
	AuthFailure bool
	// Path is the request's path, for counting distinct 404s.
	Path string
}

// key hashes who a request comes from: its principal, else its address.
func (d *Detector) key(p *identity.Principal, ip netip.Addr) uint64 {
	var h maphash.Hash
	h.SetSeed(d.seed)
	if p != nil {
		h.WriteByte(byte(p.Credential))
		switch p.Credential {
		case identity.CredentialAPIKey:
			h.WriteString(p.Consumer)
		case identity.CredentialJWT:
			h.WriteString(p.Provider)
			h.WriteByte(0)
			h.WriteString(p.Subject)
		default:
			h.WriteString(p.Issuer)
			h.WriteByte(0)
			h.WriteString(p.Subject)
		}
		return h.Sum64()
	}
	h.WriteByte(0xff)
	b := sourceOf(ip).As16()
	h.Write(b[:])
	return h.Sum64()
}

// sourceOf is what an anonymous caller is followed by: its IPv4
// address, or the /64 of its IPv6 address (one host or site is
// commonly given a whole /64, so its addresses are one source, and a
// client rotating through them is still one caller).
func sourceOf(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// CallerName names a caller as events do.
func CallerName(p *identity.Principal, ip netip.Addr) string {
	return printable(callerName(p, ip))
}

// printable replaces control characters (a JWT subject is the token
// issuer's to choose) and bounds the length, for log lines, audit
// records and the dashboard.
func printable(s string) string {
	if len(s) > 256 {
		s = s[:256]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}

func callerName(p *identity.Principal, ip netip.Addr) string {
	if p == nil {
		if !ip.IsValid() {
			return "ip:unknown"
		}
		if src := sourceOf(ip); src.Is6() {
			return "ip:" + src.String() + "/64"
		}
		return "ip:" + ip.Unmap().String()
	}
	switch p.Credential {
	case identity.CredentialAPIKey:
		return "key:" + p.Consumer
	case identity.CredentialJWT:
		return "jwt:" + p.Provider + ":" + p.Subject
	case identity.CredentialMTLS:
		return "mtls:" + p.Subject
	}
	return p.Credential.String() + ":" + p.Subject
}

// lookup returns the caller of key k, creating it; s.mu is held. now
// (unix ns) decides which throttles are still on.
func (d *Detector) lookup(s *shard, k uint64, p *identity.Principal, ip netip.Addr, now int64) *caller {
	if c := s.cur[k]; c != nil {
		return c
	}
	c := s.old[k]
	if c == nil {
		c = &caller{name: CallerName(p, ip)}
	} else {
		delete(s.old, k)
	}
	if len(s.cur) >= d.perShard/2 {
		next := make(map[uint64]*caller, d.perShard/2)
		// The callers forgotten now keep their throttles: flooding the
		// table with new addresses must not shed one. At most a quarter
		// of the shard is kept so, which leaves room for new callers.
		for ok, oc := range s.old {
			if len(next) >= d.perShard/4 {
				break
			}
			if now < oc.until {
				next[ok] = oc
			}
		}
		s.old, s.cur = s.cur, next
	}
	s.cur[k] = c
	return c
}

// Callers returns how many callers are followed.
func (d *Detector) Callers() int {
	n := 0
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.old)
		s.mu.Unlock()
	}
	return n
}

const (
	firedSpike = 1 << iota
	firedAuth
	firedEnum
)

// Observe counts a request whose response is done and flags what it
// makes unusual. p is the snapshot's policy (nil: nothing is done).
func (d *Detector) Observe(p *Policy, o *Observation) {
	if p == nil || d == nil {
		return
	}
	k := d.key(o.Principal, o.ClientIP)
	s := &d.shards[k%shards]
	t := o.Time.UnixNano()
	winLen := int64(p.Window)
	w := t / winLen
	s.mu.Lock()
	c := d.lookup(s, k, o.Principal, o.ClientIP, t)
	d.roll(c, w, winLen, p)
	c.count++
	authFail := o.AuthFailure
	if authFail {
		c.fails++
	}
	if o.Status == 404 {
		var h maphash.Hash
		h.SetSeed(d.seed)
		h.WriteString(o.Path)
		b := h.Sum64() & 255
		c.notFound[b>>6] |= 1 << (b & 63)
	}
	var fire [3]Event
	n := 0
	if r := p.RateSpike; r != nil && c.fired&firedSpike == 0 && int(c.count) >= r.MinRequests &&
		int64(c.windows)*winLen >= int64(r.Warmup) && float64(c.count) > r.Factor*c.baseline {
		c.fired |= firedSpike
		fire[n] = Event{Kind: KindRateSpike, Count: int(c.count), Baseline: c.baseline,
			Detail: fmt.Sprintf("%d requests in %s against a baseline of %.1f (more than %g times it)",
				c.count, p.Window, c.baseline, r.Factor)}
		d.throttleIfAsked(c, r.Throttle, &fire[n], t, p)
		n++
	}
	if a := p.AuthFails; a != nil && authFail && c.fired&firedAuth == 0 && int(c.fails) >= a.Count {
		c.fired |= firedAuth
		fire[n] = Event{Kind: KindAuthFailures, Count: int(c.fails),
			Detail: fmt.Sprintf("%d requests refused with 401 or 403 within %s", c.fails, p.Window)}
		d.throttleIfAsked(c, a.Throttle, &fire[n], t, p)
		n++
	}
	if e := p.Enumeration; e != nil && o.Status == 404 && c.fired&firedEnum == 0 {
		if m := distinct(&c.notFound); m >= e.Count {
			c.fired |= firedEnum
			fire[n] = Event{Kind: KindEnumeration, Count: m,
				Detail: fmt.Sprintf("about %d distinct paths answered 404 within %s", m, p.Window)}
			d.throttleIfAsked(c, e.Throttle, &fire[n], t, p)
			n++
		}
	}
	var seenKey uint64
	var epoch int64
	checkSeen := false
	// A first access is a verified caller's request that succeeded: a
	// refusal is not an access, and counting addresses would let anyone
	// with many of them fill the store.
	if p.FirstAccess != nil && o.Sensitive && o.API != "" && o.Principal != nil && o.Status < 400 {
		var h maphash.Hash
		h.SetSeed(d.seed)
		var kb [8]byte
		binary.LittleEndian.PutUint64(kb[:], k)
		h.Write(kb[:])
		h.WriteString(o.API)
		h.WriteByte(0)
		h.WriteString(o.Operation)
		seenKey = h.Sum64()
		epoch = t / max(int64(p.FirstAccess.Remember), 1)
		checkSeen = d.markSeen(s, seenKey, epoch)
	}
	name := c.name
	s.mu.Unlock()

	for i := range n {
		e := &fire[i]
		e.Time, e.Caller, e.API, e.Operation, e.Window = o.Time, name, o.API, o.Operation, p.Window
		if o.ClientIP.IsValid() {
			e.ClientIP = o.ClientIP.String()
		}
		d.enqueue(job{event: *e, pol: p})
	}
	if checkSeen {
		ip := ""
		if o.ClientIP.IsValid() {
			ip = o.ClientIP.String()
		}
		ident := name
		if o.Principal.Credential == identity.CredentialMTLS {
			ident += "\x00" + o.Principal.Issuer // two CAs may issue the same subject
		}
		if !d.enqueue(job{name: name, ident: ident, api: o.API, op: o.Operation, ip: ip, at: o.Time, seenKey: seenKey, epoch: epoch, shard: k % shards, pol: p}) {
			d.unmarkSeen(k%shards, seenKey) // not checked: a later request tries again
		}
	}
}

// markSeen records in memory that a caller used a sensitive operation in
// epoch (a span of remember), and reports whether the first-access check
// must run: for a caller not seen in this epoch or the one before (a first
// access, when the store does not know better), and, with a store, once
// per epoch for one seen in the epoch before (to carry its record into
// this one). s.mu is held.
func (d *Detector) markSeen(s *shard, k uint64, epoch int64) bool {
	last, ok := s.seen[k]
	if ok && last == epoch {
		return false
	}
	if !ok {
		// From the older generation, or new: into the current one, which
		// becomes the older when full (as lookup does with callers).
		if last, ok = s.seen0[k]; ok {
			delete(s.seen0, k)
		}
		if len(s.seen) >= d.perShard/2 {
			s.seen0, s.seen = s.seen, make(map[uint64]int64, d.perShard/2)
		}
	}
	s.seen[k] = epoch
	switch {
	case ok && last == epoch:
		return false
	case ok && last == epoch-1:
		return d.seenStore != nil
	}
	return true
}

func (d *Detector) unmarkSeen(shard, k uint64) {
	s := &d.shards[shard]
	s.mu.Lock()
	delete(s.seen, k)
	delete(s.seen0, k)
	s.mu.Unlock()
}

// roll moves c to window w, folding the windows that passed into its
// baseline.
func (d *Detector) roll(c *caller, w, winLen int64, p *Policy) {
	if c.winLen != winLen {
		// New caller, or a reload changed the window: start over,
		// keeping the baseline in the new window's terms.
		if c.winLen != 0 {
			c.baseline *= float64(winLen) / float64(c.winLen)
			c.windows = int32(min(int64(c.windows)*c.winLen/winLen, math.MaxInt32))
		}
		c.win, c.winLen = w, winLen
		c.count, c.fails, c.notFound, c.fired = 0, 0, [4]uint64{}, 0
		return
	}
	if w <= c.win {
		return
	}
	alpha := 1.0 / 60 // a one-hour time constant for one-minute windows
	if r := p.RateSpike; r != nil && r.Baseline > 0 {
		alpha = min(float64(winLen)/float64(r.Baseline), 1)
	}
	// Until a caller has 1/alpha windows of history, its baseline is the
	// plain mean of the windows it has: an average that started at zero
	// would flag every new caller's steady rate as a spike.
	passed := w - c.win
	count := float64(c.count)
	if r := p.RateSpike; r != nil && c.fired&firedSpike != 0 {
		// A window that fired leaves the baseline as it was: a sustained
		// flood must not become its own baseline (and end its throttle).
		count = min(count, c.baseline)
	}
	c.baseline += max(alpha, 1/float64(c.windows+1)) * (count - c.baseline)
	c.windows++
	for i := int64(1); i < passed; i++ {
		// The windows with no request in between.
		a := max(alpha, 1/float64(c.windows+1))
		if a == alpha {
			c.baseline *= math.Pow(1-alpha, float64(min(passed-i, 100_000)))
			c.windows = int32(min(int64(c.windows)+passed-i, math.MaxInt32))
			break
		}
		c.baseline -= a * c.baseline
		c.windows++
	}
	c.win = w
	c.count, c.fails, c.notFound, c.fired = 0, 0, [4]uint64{}, 0
}

// distinct estimates how many distinct values set bits in b (linear
// counting over 256 bits: within a few percent up to a few hundred).
func distinct(b *[4]uint64) int {
	set := bits.OnesCount64(b[0]) + bits.OnesCount64(b[1]) + bits.OnesCount64(b[2]) + bits.OnesCount64(b[3])
	if set >= 256 {
		return 256 * 6 // saturated: at least this many (256 ln 256 ≈ 1420)
	}
	return int(math.Round(-256 * math.Log(float64(256-set)/256)))
}

// MaxDistinct is the largest count the enumeration detector can tell.
const MaxDistinct = 1000

// throttleIfAsked throttles c when the detector says so; s.mu is held.
func (d *Detector) throttleIfAsked(c *caller, throttle bool, e *Event, t int64, p *Policy) {
	e.Action = ActionLogged
	if !throttle {
		return
	}
	until := t + int64(p.Throttle.Duration)
	if until > c.until {
		if c.until <= t {
			c.tat = t // a new throttle starts with its whole burst
		}
		c.until = until
	}
	c.interval = int64(p.Throttle.Period) / int64(max(p.Throttle.Rate, 1))
	c.burst = int64(max(p.Throttle.Rate, 1))
	for {
		old := d.throttleEnd.Load()
		if old >= until || d.throttleEnd.CompareAndSwap(old, until) {
			break
		}
	}
	e.Action, e.Until = ActionThrottled, time.Unix(0, c.until)
}

// Throttled reports whether a request of the caller (p, else ip) at t
// is beyond what a throttled caller may send, and when to retry. A
// caller that is not throttled is never refused; when nobody is, this
// is one atomic load.
func (d *Detector) Throttled(p *identity.Principal, ip netip.Addr, t time.Time) (time.Duration, bool) {
	if d == nil {
		return 0, false
	}
	now := t.UnixNano()
	if now >= d.throttleEnd.Load() {
		return 0, false
	}
	k := d.key(p, ip)
	s := &d.shards[k%shards]
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cur[k]
	if c == nil {
		c = s.old[k]
	}
	if c == nil || now >= c.until {
		return 0, false
	}
	// GCRA: a request is allowed when the theoretical arrival time, less
	// the burst's allowance, is not in the future.
	tat := max(c.tat, now)
	allowAt := tat - (c.burst-1)*c.interval
	if allowAt > now {
		if d.metrics != nil {
			d.metrics.throttled.Inc()
		}
		return time.Duration(min(allowAt, c.until) - now), true
	}
	c.tat = tat + c.interval
	return 0, false
}

func (d *Detector) enqueue(j job) bool {
	select {
	case d.queue <- j:
		return true
	default:
		d.dropped.Add(1)
		return false
	}
}

// Recent returns up to limit events, newest first, of the given kind
// ("" for all).
func (d *Detector) Recent(limit int, kind Kind) []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.next
	if d.full {
		n = len(d.recent)
	}
	out := make([]Event, 0, min(limit, n))
	for i := 0; i < n && len(out) < limit; i++ {
		e := d.recent[(d.next-1-i+len(d.recent))%len(d.recent)]
		if kind == "" || e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// Counts returns how many events of each kind were flagged since start.
func (d *Detector) Counts() map[Kind]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[Kind]int64, len(Kinds))
	for _, k := range Kinds {
		out[k] = d.counts[k]
	}
	return out
}

// Flush waits until what was queued before it has been handled (at
// most the given time) and reports whether it was.
func (d *Detector) Flush(timeout time.Duration) bool {
	b := make(chan struct{})
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case d.queue <- job{barrier: b}:
	case <-t.C:
		return false
	}
	select {
	case <-b:
		return true
	case <-t.C:
		return false
	}
}

// Dropped returns how many events and checks the queue dropped.
func (d *Detector) Dropped() int64 { return d.dropped.Load() }

// run writes events and makes first-access checks.
func (d *Detector) run() {
	defer close(d.done)
	sweep := time.NewTicker(time.Hour)
	defer sweep.Stop()
	var win, lastT int64 // lastT: the time of the last event handled
	var written, held int
	var lastPol *Policy
	flushHeld := func() {
		if held > 0 {
			d.logger.Warn("anomalies not written individually: the per-window bound was reached",
				"count", held, "max_events_per_window", lastPol.MaxEventsPerWindow)
			held = 0
		}
	}
	// The summary of the events held back is written when their window
	// ends, whether or not another event comes.
	var heldTimer *time.Timer
	var heldC <-chan time.Time
	var heldWin int64 // the window the timer is for
	defer func() {
		if heldTimer != nil {
			heldTimer.Stop()
		}
	}()
	for {
		var j job
		select {
		case j = <-d.queue:
		case <-sweep.C:
			d.sweepSeen()
			continue
		case <-heldC:
			heldC = nil
			if win == heldWin {
				flushHeld()
			}
			continue
		case <-d.stop:
			for {
				select {
				case j = <-d.queue:
					d.handle(j, &win, &written, &held, &lastPol, &lastT, flushHeld)
				default:
					flushHeld()
					return
				}
			}
		}
		before := win
		d.handle(j, &win, &written, &held, &lastPol, &lastT, flushHeld)
		if win != before && heldC != nil {
			// handle wrote the old window's summary: its timer is spent.
			heldTimer.Stop()
			heldC = nil
		}
		if held > 0 && heldC == nil {
			// The rest of the window, on the events' clock.
			winLen := int64(lastPol.Window)
			wait := time.Duration(max((win+1)*winLen-lastT, 0))
			if heldTimer == nil {
				heldTimer = time.NewTimer(wait)
			} else {
				heldTimer.Reset(wait)
			}
			heldC, heldWin = heldTimer.C, win
		}
	}
}

func (d *Detector) handle(j job, win *int64, written, held *int, lastPol **Policy, lastT *int64, flushHeld func()) {
	if j.barrier != nil {
		close(j.barrier)
		return
	}
	if j.name != "" {
		e, ok := d.checkFirstAccess(j)
		if !ok {
			return
		}
		j.event = e
	}
	e := j.event
	p := j.pol
	*lastPol, *lastT = p, e.Time.UnixNano()
	if w := e.Time.UnixNano() / int64(p.Window); w != *win {
		flushHeld()
		*win, *written = w, 0
	}
	d.mu.Lock()
	d.recent[d.next] = e
	d.next = (d.next + 1) % len(d.recent)
	if d.next == 0 {
		d.full = true
	}
	d.counts[e.Kind]++
	d.mu.Unlock()
	if d.metrics != nil {
		d.metrics.events.WithLabelValues(string(e.Kind), e.Action).Inc()
	}
	if p.MaxEventsPerWindow > 0 && *written >= p.MaxEventsPerWindow {
		*held++
		return
	}
	*written++
	attrs := []any{"kind", e.Kind, "caller", e.Caller, "client_ip", e.ClientIP, "action", e.Action, "detail", e.Detail}
	if e.API != "" {
		attrs = append(attrs, "api", e.API, "operation", e.Operation)
	}
	if !e.Until.IsZero() {
		attrs = append(attrs, "until", e.Until.UTC().Format(time.RFC3339))
	}
	d.logger.Warn("anomaly", attrs...)
	if d.audit != nil {
		target := e.Caller
		if e.API != "" {
			target = "apis/" + e.API + "/operations/" + e.Operation
		}
		// The outcome is the detector's: it flagged (and perhaps
		// throttled) the caller; the event itself is the record's after.
		_ = d.audit.Record(context.Background(), audit.Entry{
			Actor: e.Caller, Action: AuditActionPrefix + string(e.Kind), Target: target,
			Detail: e.Detail, After: e,
		})
	}
}

// seenKeyPrefix starts the store counters of the first-access memory.
const seenKeyPrefix = "anomaly.first_access."

// learnKey holds when first-access detection began (unix seconds), for
// every gateway sharing the store.
const learnKey = "anomaly.first_access_since"

// checkFirstAccess asks the store whether j's caller is new to its
// operation and makes the event when it is.
func (d *Detector) checkFirstAccess(j job) (Event, bool) {
	fa := j.pol.FirstAccess
	now := d.now()
	first := true
	if d.seenStore != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.resolveLearning(ctx, now)
		if d.learnStart.Load() == 0 {
			// Not known whether this is still the learning period: the
			// access is not recorded, and is checked again next time.
			d.unmarkSeen(j.shard, j.seenKey)
			d.warnStore(now, j, errors.New("reading when first-access detection began failed"))
			return Event{}, false
		}
		known, err := d.seenInStore(ctx, j, now)
		if err != nil {
			// Checked again at the caller's next request to it.
			d.unmarkSeen(j.shard, j.seenKey)
			d.warnStore(now, j, err)
			return Event{}, false
		}
		first = !known
	}
	if !first {
		return Event{}, false
	}
	start := d.learnStart.Load()
	if start == 0 || now.UnixNano() < start+int64(fa.Learning) {
		return Event{}, false // still learning who the callers are
	}
	return Event{Time: j.at, Kind: KindFirstAccess, Caller: j.name, ClientIP: j.ip, API: j.api, Operation: j.op,
		Count: 1, Window: j.pol.Window, Action: ActionLogged,
		Detail: fmt.Sprintf("first request of this caller to the sensitive operation %s of %s (none in at least %s)",
			j.op, j.api, fa.Remember)}, true
}

// seenInStore records j's access in the store, in the record of its
// epoch (a span of remember; it lasts until the end of the next one), and
// reports whether the caller was known: a record of this epoch or the one
// before, or one written before records had epochs (so that an upgrade
// does not report every caller again).
func (d *Detector) seenInStore(ctx context.Context, j job, now time.Time) (bool, error) {
	remember := max(int64(j.pol.FirstAccess.Remember), 1)
	base := seenKeyPrefix + digest(j.ident, j.api, j.op)
	v, err := d.seenStore.AddCounter(ctx, base+"."+strconv.FormatInt(j.epoch, 10), 1, time.Unix(0, (j.epoch+2)*remember), now)
	if err != nil || v > 1 {
		return v > 1, err
	}
	for _, key := range []string{base + "." + strconv.FormatInt(j.epoch-1, 10), base} {
		n, err := d.seenStore.GetCounter(ctx, key, now)
		if err != nil || n > 0 {
			return n > 0, err
		}
	}
	return false, nil
}

func (d *Detector) warnStore(now time.Time, j job, err error) {
	if now.Sub(d.lastStoreWarn) >= time.Minute {
		d.lastStoreWarn = now
		d.logger.Warn("anomaly detection: the first-access memory is unavailable; first accesses are not checked until it is back (logged at most once a minute)",
			"api", j.api, "operation", j.op, "error", err)
	}
}

// resolveLearning reads (or sets) when first-access detection began.
func (d *Detector) resolveLearning(ctx context.Context, now time.Time) {
	if d.learnStart.Load() != 0 {
		return
	}
	far := now.AddDate(100, 0, 0)
	v, err := d.seenStore.GetCounter(ctx, learnKey, now)
	if err != nil {
		return
	}
	if v == 0 {
		sec := now.Unix()
		v, err = d.seenStore.AddCounter(ctx, learnKey, sec, far, now)
		if err != nil {
			return
		}
		if v != sec {
			v -= sec // another gateway set it first: its value is what was there
		}
	}
	d.learnStart.Store(time.Unix(v, 0).UnixNano())
}

// digest names a first-access record without the caller's name in the
// clear.
func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (d *Detector) sweepSeen() {
	if d.seenStore == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.seenStore.DeleteExpiredCounters(ctx, d.now()); err != nil {
		d.logger.Warn("anomaly detection: removing expired first-access records failed", "error", err)
	}
}
