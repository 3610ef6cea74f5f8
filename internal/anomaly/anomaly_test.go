package anomaly

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/store/sqlite"
)

var t0 = time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)

func policy() *Policy {
	return &Policy{
		Window:      time.Minute,
		RateSpike:   &RateSpike{Factor: 5, MinRequests: 50, Baseline: time.Hour, Warmup: 10 * time.Minute},
		AuthFails:   &Threshold{Count: 20},
		Enumeration: &Threshold{Count: 30},
		Throttle:    Throttle{Rate: 2, Period: time.Minute, Duration: 10 * time.Minute},
	}
}

func newDetector(t *testing.T, o Options) *Detector {
	t.Helper()
	d := New(o)
	d.Start()
	t.Cleanup(d.Close)
	return d
}

// events waits (bounded) until the detector has handled what is queued
// and returns its events, oldest first.
func events(t *testing.T, d *Detector) []Event {
	t.Helper()
	if !d.Flush(5 * time.Second) {
		t.Fatal("the detector's queue did not drain")
	}
	ev := d.Recent(1000, "")
	slices.Reverse(ev)
	return ev
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newLogger(w *syncBuffer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

// failingCounters is a store that fails until ok is set.
type failingCounters struct {
	mu sync.Mutex
	ok bool
	n  map[string]int64
}

func (f *failingCounters) AddCounter(_ context.Context, key string, delta int64, _, _ time.Time) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ok {
		return 0, errors.New("connection refused")
	}
	if f.n == nil {
		f.n = map[string]int64{}
	}
	f.n[key] += delta
	return f.n[key], nil
}

func (f *failingCounters) GetCounter(_ context.Context, key string, _ time.Time) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ok {
		return 0, errors.New("connection refused")
	}
	return f.n[key], nil
}

func (f *failingCounters) DeleteExpiredCounters(context.Context, time.Time) (int, error) {
	return 0, nil
}

var alice = &identity.Principal{Credential: identity.CredentialJWT, Provider: "corp", Subject: "alice"}
var bob = &identity.Principal{Credential: identity.CredentialAPIKey, Consumer: "bob", Subject: "bob"}

func obs(p *identity.Principal, ip string, at time.Time, status int, path string) *Observation {
	return &Observation{Time: at, ClientIP: netip.MustParseAddr(ip), Principal: p,
		API: "orders", Operation: "GET /orders/{id}", Status: status, Path: path,
		AuthFailure: status == 401 || status == 403} // the gateway's refusals, in these tests
}

func TestRateSpike_AgainstTheCallersOwnBaseline(t *testing.T) {
	d := newDetector(t, Options{})
	p := policy()
	// 30 minutes of 10 requests a minute: the baseline.
	for m := range 30 {
		for i := range 10 {
			d.Observe(p, obs(alice, "10.0.0.1", t0.Add(time.Duration(m)*time.Minute+time.Duration(i)*time.Second), 200, "/orders/1"))
		}
	}
	if ev := events(t, d); len(ev) != 0 {
		t.Fatalf("steady traffic flagged: %+v", ev)
	}
	// Minute 30: 120 requests.
	at := t0.Add(30 * time.Minute)
	for i := range 120 {
		d.Observe(p, obs(alice, "10.0.0.1", at.Add(time.Duration(i)*100*time.Millisecond), 200, "/orders/1"))
	}
	ev := events(t, d)
	if len(ev) != 1 {
		t.Fatalf("want one rate_spike event, got %+v", ev)
	}
	e := ev[0]
	if e.Kind != KindRateSpike || e.Caller != "jwt:corp:alice" || e.Action != ActionLogged || e.API != "orders" {
		t.Fatalf("event = %+v", e)
	}
	// The baseline is 10 (the mean of the 30 minutes so far): the first
	// request above 5 x 10 fires.
	if e.Baseline != 10 || e.Count != 51 {
		t.Fatalf("count %d baseline %.2f; want the 51st request to fire against a baseline of 10", e.Count, e.Baseline)
	}
	// Bob, with no history, may send as much in his first minute: no
	// baseline is no spike.
	for i := range 200 {
		d.Observe(p, obs(bob, "10.0.0.2", at.Add(time.Duration(i)*10*time.Millisecond), 200, "/orders/1"))
	}
	if ev := events(t, d); len(ev) != 1 {
		t.Fatalf("a caller without a baseline was flagged: %+v", ev[1:])
	}
}

func TestRateSpike_IdleTimeLowersTheBaseline(t *testing.T) {
	d := newDetector(t, Options{})
	p := policy()
	p.RateSpike.MinRequests = 10
	// An hour at 40 a minute, then three idle hours, then 60 in a minute:
	// the baseline has decayed, so 60 is a spike.
	for m := range 60 {
		for i := range 40 {
			d.Observe(p, obs(alice, "10.0.0.1", t0.Add(time.Duration(m)*time.Minute+time.Duration(i)*time.Second), 200, "/"))
		}
	}
	at := t0.Add(4 * time.Hour)
	for i := range 60 {
		d.Observe(p, obs(alice, "10.0.0.1", at.Add(time.Duration(i)*time.Second), 200, "/"))
	}
	ev := events(t, d)
	if len(ev) != 1 || ev[0].Kind != KindRateSpike || ev[0].Baseline > 2.5 || ev[0].Count != 10 {
		t.Fatalf("want one spike against a decayed baseline, got %+v", ev)
	}
}

func TestAuthFailures_PerWindowAndOnce(t *testing.T) {
	d := newDetector(t, Options{})
	p := policy()
	// 19 refusals in a minute, then 19 in the next: nothing.
	for i := range 19 {
		d.Observe(p, obs(nil, "192.0.2.7", t0.Add(time.Duration(i)*time.Second), 401, "/orders"))
	}
	for i := range 19 {
		d.Observe(p, obs(nil, "192.0.2.7", t0.Add(time.Minute+time.Duration(i)*time.Second), 401, "/orders"))
	}
	if ev := events(t, d); len(ev) != 0 {
		t.Fatalf("flagged under the threshold: %+v", ev)
	}
	// 40 in the third minute: one event, at the 20th.
	for i := range 40 {
		d.Observe(p, obs(nil, "192.0.2.7", t0.Add(2*time.Minute+time.Duration(i)*time.Second), 401, "/orders"))
	}
	ev := events(t, d)
	if len(ev) != 1 || ev[0].Kind != KindAuthFailures || ev[0].Count != 20 || ev[0].Caller != "ip:192.0.2.7" {
		t.Fatalf("events = %+v", ev)
	}
	// 403s of an authenticated caller count against that caller.
	for i := range 20 {
		d.Observe(p, obs(bob, "192.0.2.8", t0.Add(2*time.Minute+time.Duration(i)*time.Second), 403, "/orders"))
	}
	ev = events(t, d)
	if len(ev) != 2 || ev[1].Caller != "key:bob" {
		t.Fatalf("events = %+v", ev)
	}
}

func TestEnumeration_DistinctPathsOnly(t *testing.T) {
	d := newDetector(t, Options{})
	p := policy()
	// A client polling one missing path: not an enumeration.
	for i := range 200 {
		d.Observe(p, obs(nil, "198.51.100.1", t0.Add(time.Duration(i)*100*time.Millisecond), 404, "/orders/404"))
	}
	if ev := events(t, d); len(ev) != 0 {
		t.Fatalf("one path flagged: %+v", ev)
	}
	// A sweep of ids.
	for i := range 60 {
		d.Observe(p, obs(nil, "198.51.100.2", t0.Add(time.Duration(i)*100*time.Millisecond), 404, fmt.Sprintf("/orders/%d", 1000+i)))
	}
	ev := events(t, d)
	if len(ev) != 1 || ev[0].Kind != KindEnumeration || ev[0].Caller != "ip:198.51.100.2" {
		t.Fatalf("events = %+v", ev)
	}
	if ev[0].Count < 30 || ev[0].Count > 36 {
		t.Fatalf("estimated %d distinct paths when firing; want about 30", ev[0].Count)
	}
}

func TestDistinct_Estimate(t *testing.T) {
	d := New(Options{})
	for _, n := range []int{10, 30, 100, 300} {
		var b [4]uint64
		c := &caller{}
		_ = c
		for i := range n {
			k := d.key(nil, netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})) & 255
			b[k>>6] |= 1 << (k & 63)
		}
		got := distinct(&b)
		if diff := float64(got-n) / float64(n); diff < -0.2 || diff > 0.2 {
			t.Errorf("%d distinct values estimated at %d", n, got)
		}
	}
}

func TestThrottle_LimitsOnlyTheFlaggedCallerForItsDuration(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := newDetector(t, Options{Registerer: reg})
	p := policy()
	p.AuthFails.Throttle = true
	bad, good := netip.MustParseAddr("192.0.2.66"), netip.MustParseAddr("192.0.2.67")
	if _, limited := d.Throttled(nil, bad, t0); limited {
		t.Fatal("throttled before anything happened")
	}
	for i := range 20 {
		d.Observe(p, obs(nil, bad.String(), t0.Add(time.Duration(i)*time.Second), 401, "/"))
	}
	at := t0.Add(30 * time.Second)
	// Rate 2 per minute: two requests pass at once, the third waits 30 s.
	for i := range 2 {
		if _, limited := d.Throttled(nil, bad, at); limited {
			t.Fatalf("request %d of the allowance refused", i+1)
		}
	}
	retry, limited := d.Throttled(nil, bad, at)
	if !limited || retry != 30*time.Second {
		t.Fatalf("third request: limited %v, retry %v; want true, 30s", limited, retry)
	}
	if _, limited := d.Throttled(nil, good, at); limited {
		t.Fatal("another caller was throttled")
	}
	if _, limited := d.Throttled(nil, bad, at.Add(30*time.Second)); limited {
		t.Fatal("the allowance did not come back")
	}
	// The throttle ends 10 minutes after the event (at the 20th refusal).
	end := t0.Add(19*time.Second + 10*time.Minute)
	for i := range 10 {
		if _, limited := d.Throttled(nil, bad, end.Add(time.Duration(i)*time.Millisecond)); limited {
			t.Fatal("still throttled after the duration")
		}
	}
	ev := events(t, d)
	if len(ev) != 1 || ev[0].Action != ActionThrottled || !ev[0].Until.Equal(end) {
		t.Fatalf("events = %+v", ev)
	}
	if got := testutil.ToFloat64(d.metrics.events.WithLabelValues("auth_failures", "throttled")); got != 1 {
		t.Fatalf("gatehouse_anomalies_total{auth_failures,throttled} = %v", got)
	}
	if got := testutil.ToFloat64(d.metrics.throttled); got != 1 {
		t.Fatalf("throttled requests = %v, want 1", got)
	}
}

func TestThrottle_NobodyThrottledIsOneLoad(t *testing.T) {
	d := New(Options{})
	ip := netip.MustParseAddr("192.0.2.1")
	if n := testing.AllocsPerRun(100, func() { d.Throttled(alice, ip, t0) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
	p := policy()
	o := obs(alice, "192.0.2.1", t0, 200, "/")
	if n := testing.AllocsPerRun(100, func() { d.Observe(p, o) }); n != 0 {
		t.Fatalf("Observe of a known caller: %v allocations", n)
	}
}

func TestCallers_Bounded(t *testing.T) {
	d := New(Options{MaxCallers: 1000})
	p := policy()
	for i := range 100_000 {
		d.Observe(p, &Observation{Time: t0, ClientIP: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Status: 200, Path: "/"})
	}
	if n := d.Callers(); n > 1000 || n < 400 {
		t.Fatalf("%d callers followed with max_callers 1000", n)
	}
}

// Flooding the table with new addresses does not shed a throttle: the
// throttled callers are kept when the others are forgotten, and the
// table stays bounded.
func TestCallers_AFloodDoesNotShedAThrottle(t *testing.T) {
	d := newDetector(t, Options{MaxCallers: 1000})
	p := policy()
	p.AuthFails.Throttle = true
	bad := netip.MustParseAddr("192.0.2.66")
	for i := range 20 {
		d.Observe(p, obs(nil, bad.String(), t0.Add(time.Duration(i)*time.Second), 401, "/"))
	}
	at := t0.Add(30 * time.Second)
	for i := range 100_000 {
		d.Observe(p, &Observation{Time: at, ClientIP: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Status: 200, Path: "/"})
	}
	if n := d.Callers(); n > 1000 {
		t.Fatalf("%d callers followed with max_callers 1000", n)
	}
	for range 2 { // the allowance
		d.Throttled(nil, bad, at)
	}
	if _, limited := d.Throttled(nil, bad, at); !limited {
		t.Fatal("a flood of 100,000 new addresses shed the throttle")
	}
}

func TestQueue_FullDropsAndCounts(t *testing.T) {
	d := New(Options{QueueSize: 2}) // not started: nothing drains it
	p := policy()
	for i := range 5 {
		ip := fmt.Sprintf("192.0.2.%d", i)
		for j := range 20 {
			d.Observe(p, obs(nil, ip, t0.Add(time.Duration(j)*time.Second), 401, "/"))
		}
	}
	if got := d.Dropped(); got != 3 {
		t.Fatalf("dropped %d, want 3", got)
	}
}

func TestEvents_BoundedPerWindow(t *testing.T) {
	var buf syncBuffer
	d := newDetector(t, Options{Logger: newLogger(&buf)})
	p := policy()
	p.MaxEventsPerWindow = 3
	for i := range 10 {
		ip := fmt.Sprintf("192.0.2.%d", i)
		for j := range 20 {
			d.Observe(p, obs(nil, ip, t0.Add(time.Duration(j)*time.Second), 401, "/"))
		}
	}
	// The next window's event closes the previous window's count.
	for j := range 20 {
		d.Observe(p, obs(nil, "192.0.2.200", t0.Add(time.Minute+time.Duration(j)*time.Second), 401, "/"))
	}
	ev := events(t, d)
	if len(ev) != 11 {
		t.Fatalf("%d events kept, want 11 (all are kept and counted)", len(ev))
	}
	out := buf.String()
	if n := strings.Count(out, `"msg":"anomaly"`); n != 4 {
		t.Fatalf("%d anomaly lines, want 3 + 1:\n%s", n, out)
	}
	if !strings.Contains(out, `"count":7`) {
		t.Fatalf("the summary of the 7 held back is missing:\n%s", out)
	}
}

// The summary of the events held back is written when their window ends,
// though no later event comes.
func TestEvents_HeldBackSummaryAtTheWindowsEnd(t *testing.T) {
	var buf syncBuffer
	d := newDetector(t, Options{Logger: newLogger(&buf)})
	p := policy()
	p.MaxEventsPerWindow = 1
	p.Window = 500 * time.Millisecond
	p.AuthFails.Count = 2
	start := time.Now().Truncate(p.Window).Add(p.Window) // a window's start
	time.Sleep(time.Until(start))
	for i := range 3 {
		ip := fmt.Sprintf("192.0.2.%d", i)
		for range 2 {
			d.Observe(p, obs(nil, ip, start, 401, "/"))
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), `"count":2`) {
		if time.Now().After(deadline) {
			t.Fatalf("no summary of the 2 held back:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := strings.Count(buf.String(), `"msg":"anomaly"`); n != 1 {
		t.Fatalf("%d anomaly lines, want 1:\n%s", n, buf.String())
	}
}

func TestFirstAccess_SharedStoreReportsOnceAcrossGateways(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st1, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st1.Close()
	st2, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	p := policy()
	p.FirstAccess = &FirstAccess{Remember: 24 * time.Hour, Learning: time.Hour}
	now := t0
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := newDetector(t, Options{Seen: st1, Now: clock})
	b := newDetector(t, Options{Seen: st2, Now: clock})
	sens := func(pr *identity.Principal, at time.Time) *Observation {
		o := obs(pr, "10.1.1.1", at, 200, "/orders/1")
		o.Operation, o.Sensitive = "DELETE /orders/{id}", true
		return o
	}
	// During the learning hour: remembered, not reported.
	a.Observe(p, sens(alice, t0))
	if ev := events(t, a); len(ev) != 0 {
		t.Fatalf("reported while learning: %+v", ev)
	}
	mu.Lock()
	now = t0.Add(2 * time.Hour)
	mu.Unlock()
	// Alice, learned, through the other gateway: nothing. Bob is new:
	// reported by the gateway he reached, and not again by the other.
	b.Observe(p, sens(alice, now))
	b.Observe(p, sens(bob, now))
	eb := events(t, b)
	a.Observe(p, sens(bob, now.Add(time.Second)))
	ea := events(t, a)
	if len(ea) != 0 || len(eb) != 1 || eb[0].Kind != KindFirstAccess || eb[0].Caller != "key:bob" {
		t.Fatalf("gateway a: %+v\ngateway b: %+v", ea, eb)
	}
	// A non-sensitive operation is never checked.
	o := obs(&identity.Principal{Credential: identity.CredentialJWT, Provider: "corp", Subject: "carol"}, "10.1.1.2", now, 200, "/")
	a.Observe(p, o)
	if ev := events(t, a); len(ev) != 0 {
		t.Fatalf("a non-sensitive operation reported: %+v", ev)
	}
	// A caller that keeps using the operation is never new again: alice,
	// every 20 hours for five days, through gateways that restart.
	for range 6 {
		mu.Lock()
		now = now.Add(20 * time.Hour)
		mu.Unlock()
		g := newDetector(t, Options{Seen: st1, Now: clock}) // a restarted gateway: memory empty
		g.Observe(p, sens(alice, now))
		if ev := events(t, g); len(ev) != 0 {
			t.Fatalf("an active caller reported again at %v: %+v", now.Sub(t0), ev)
		}
	}
	// Bob, silent for twice remember, is new again.
	mu.Lock()
	now = now.Add(49 * time.Hour)
	mu.Unlock()
	c := newDetector(t, Options{Seen: st1, Now: clock})
	c.Observe(p, sens(bob, now))
	if ev := events(t, c); len(ev) != 1 {
		t.Fatalf("after twice remember: %+v", ev)
	}
}

// In memory alone (no store), a caller active in every span of remember
// stays known, and one silent for two spans is new again.
func TestFirstAccess_MemoryAloneSlides(t *testing.T) {
	p := policy()
	p.FirstAccess = &FirstAccess{Remember: time.Hour}
	d := newDetector(t, Options{})
	at := func(h float64) *Observation {
		o := obs(alice, "10.1.1.1", t0.Add(time.Duration(h*float64(time.Hour))), 200, "/orders/1")
		o.Operation, o.Sensitive = "DELETE /orders/{id}", true
		return o
	}
	for _, h := range []float64{0, 0.9, 1.8, 2.7, 3.6} {
		d.Observe(p, at(h))
	}
	if ev := events(t, d); len(ev) != 1 {
		t.Fatalf("an active caller: %d reports, want the first only: %+v", len(ev), ev)
	}
	d.Observe(p, at(6.5)) // silent since 3.6
	if ev := events(t, d); len(ev) != 2 {
		t.Fatalf("after two silent spans: %d reports, want 2", len(ev))
	}
}

func TestFirstAccess_StoreFailureReportsNothingAndRetries(t *testing.T) {
	f := &failingCounters{}
	p := policy()
	p.FirstAccess = &FirstAccess{Remember: time.Hour}
	var buf syncBuffer
	d := newDetector(t, Options{Seen: f, Logger: newLogger(&buf)})
	o := obs(alice, "10.1.1.1", t0, 200, "/")
	o.Sensitive = true
	d.Observe(p, o)
	if ev := events(t, d); len(ev) != 0 {
		t.Fatalf("events with the store down: %+v", ev)
	}
	d.Observe(p, o)
	d.Observe(p, o)
	if ev := events(t, d); len(ev) != 0 {
		t.Fatalf("events with the store down: %+v", ev)
	}
	if n := strings.Count(buf.String(), "first-access memory is unavailable"); n != 1 {
		t.Fatalf("%d warnings, want 1 (at most one a minute):\n%s", n, buf.String())
	}
	// The store is back: the next request is checked, and reported.
	f.mu.Lock()
	f.ok = true
	f.mu.Unlock()
	d.Observe(p, o)
	if ev := events(t, d); len(ev) != 1 || ev[0].Kind != KindFirstAccess {
		t.Fatalf("after the store came back: %+v", ev)
	}
}

func TestFirstAccess_OnlyVerifiedCallersThatSucceeded(t *testing.T) {
	p := policy()
	p.FirstAccess = &FirstAccess{Remember: time.Hour}
	d := newDetector(t, Options{})
	for i, o := range []*Observation{
		obs(alice, "10.1.1.1", t0, 401, "/"),  // refused
		obs(alice, "10.1.1.1", t0, 403, "/"),  // refused
		obs(nil, "10.1.1.2", t0, 200, "/"),    // no verified caller
		obs(alice, "10.1.1.1", t0, 200, "/"),  // the first access
		obs(alice, "10.1.1.1", t0, 200, "/x"), // the second
	} {
		o.Sensitive = true
		_ = i
		d.Observe(p, o)
	}
	ev := events(t, d)
	if len(ev) != 1 || ev[0].Kind != KindFirstAccess || ev[0].Caller != "jwt:corp:alice" {
		t.Fatalf("events = %+v", ev)
	}
}

func TestFirstAccess_MTLSSubjectsOfTwoIssuersAreTwoCallers(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := policy()
	p.FirstAccess = &FirstAccess{Remember: time.Hour}
	d := newDetector(t, Options{Seen: st})
	for _, iss := range []string{"CN=CA one", "CN=CA two"} {
		o := obs(&identity.Principal{Credential: identity.CredentialMTLS, Issuer: iss, Subject: "CN=svc"}, "10.1.1.1", t0, 200, "/")
		o.Sensitive = true
		d.Observe(p, o)
	}
	if ev := events(t, d); len(ev) != 2 {
		t.Fatalf("events = %+v", ev)
	}
}

func TestFirstAccess_LearningStartUnknownIsRetried(t *testing.T) {
	f := &flakyLearning{failingCounters: failingCounters{ok: true}}
	p := policy()
	p.FirstAccess = &FirstAccess{Remember: time.Hour}
	d := newDetector(t, Options{Seen: f})
	o := obs(alice, "10.1.1.1", t0, 200, "/")
	o.Sensitive = true
	d.Observe(p, o)
	if ev := events(t, d); len(ev) != 0 {
		t.Fatalf("reported without knowing the learning period: %+v", ev)
	}
	f.mu.Lock()
	f.getOK = true
	f.mu.Unlock()
	d.Observe(p, o)
	if ev := events(t, d); len(ev) != 1 {
		t.Fatalf("the access was lost: %+v", ev)
	}
}

// flakyLearning fails GetCounter until getOK.
type flakyLearning struct {
	failingCounters
	getOK bool
}

func (f *flakyLearning) GetCounter(ctx context.Context, key string, now time.Time) (int64, error) {
	f.mu.Lock()
	ok := f.getOK
	f.mu.Unlock()
	if !ok {
		return 0, errors.New("timeout")
	}
	return f.failingCounters.GetCounter(ctx, key, now)
}

func TestRateSpike_SustainedFloodKeepsFiring(t *testing.T) {
	d := newDetector(t, Options{})
	p := policy()
	p.RateSpike.Throttle = true
	for m := range 40 {
		for i := range 10 {
			d.Observe(p, obs(alice, "10.0.0.1", t0.Add(time.Duration(m)*time.Minute+time.Duration(i)*time.Second), 200, "/"))
		}
	}
	// Then 60 minutes at 1000 a minute: every window fires.
	for m := 40; m < 100; m++ {
		for i := range 1000 {
			d.Observe(p, obs(alice, "10.0.0.1", t0.Add(time.Duration(m)*time.Minute+time.Duration(i)*time.Millisecond), 200, "/"))
		}
	}
	if ev := events(t, d); len(ev) != 60 {
		t.Fatalf("%d windows of the flood fired, want all 60", len(ev))
	}
}

func TestThrottle_RetryAfterNeverPastTheEnd(t *testing.T) {
	d := newDetector(t, Options{})
	p := policy()
	p.AuthFails.Throttle = true
	p.Throttle = Throttle{Rate: 1, Period: time.Hour, Duration: time.Minute}
	ip := netip.MustParseAddr("192.0.2.9")
	for i := range 20 {
		d.Observe(p, obs(nil, ip.String(), t0.Add(time.Duration(i)*time.Millisecond), 401, "/"))
	}
	at := t0.Add(time.Second)
	d.Throttled(nil, ip, at) // the allowance
	retry, limited := d.Throttled(nil, ip, at)
	if !limited || retry > time.Minute {
		t.Fatalf("limited %v, retry %v: past the throttle's end", limited, retry)
	}
}

func TestCallerName_ControlCharactersReplaced(t *testing.T) {
	got := CallerName(&identity.Principal{Credential: identity.CredentialJWT, Provider: "corp", Subject: "a\nb\x00c"}, netip.Addr{})
	if got != "jwt:corp:a?b?c" {
		t.Fatalf("%q", got)
	}
}

// An anonymous IPv6 caller is its /64: a client rotating through the
// addresses of its network is one caller, and its throttle holds for all
// of them; another /64, and IPv4 in IPv6, are callers of their own.
func TestAuthFailures_IPv6CallersAreTheirSlash64(t *testing.T) {
	d := newDetector(t, Options{})
	p := policy()
	p.AuthFails.Throttle = true
	for i := range 20 {
		ip := fmt.Sprintf("2001:db8:1:2::%x", i+1)
		d.Observe(p, obs(nil, ip, t0.Add(time.Duration(i)*time.Second), 401, "/orders"))
		d.Observe(p, obs(nil, fmt.Sprintf("2001:db8:1:3::%x", i+1), t0.Add(time.Duration(i)*time.Second), 200, "/orders"))
		d.Observe(p, obs(nil, "::ffff:192.0.2.9", t0.Add(time.Duration(i)*time.Second), 200, "/orders"))
	}
	ev := events(t, d)
	if len(ev) != 1 || ev[0].Caller != "ip:2001:db8:1:2::/64" || ev[0].Count != 20 || ev[0].ClientIP != "2001:db8:1:2::14" {
		t.Fatalf("events = %+v", ev)
	}
	if n := d.Callers(); n != 3 {
		t.Errorf("%d callers, want 3 (two /64s and one IPv4 address)", n)
	}
	at := t0.Add(30 * time.Second)
	for range 2 { // the throttle's allowance (2 a minute), spent from two addresses
		d.Throttled(nil, netip.MustParseAddr("2001:db8:1:2::1"), at)
	}
	if _, limited := d.Throttled(nil, netip.MustParseAddr("2001:db8:1:2:ffff::9"), at); !limited {
		t.Error("another address of the throttled /64 is not held back")
	}
	if _, limited := d.Throttled(nil, netip.MustParseAddr("2001:db8:1:3::1"), at); limited {
		t.Error("another /64 is held back")
	}
	if got := CallerName(nil, netip.MustParseAddr("::ffff:192.0.2.9")); got != "ip:192.0.2.9" {
		t.Errorf("an IPv4-mapped address is named %q", got)
	}
}

// A window's summary is one line, even when the window before also held
// events back: that window's timer, due just after the next window began,
// must not write part of the next one's count.
func TestEvents_OneSummaryPerWindow(t *testing.T) {
	var buf syncBuffer
	d := newDetector(t, Options{Logger: newLogger(&buf)})
	p := policy()
	p.MaxEventsPerWindow = 1
	p.Window = time.Second
	p.AuthFails.Count = 2
	w0 := time.Now().Truncate(p.Window).Add(p.Window)
	time.Sleep(time.Until(w0))
	burst := func(at time.Time, first, n int) {
		for i := range n {
			ip := fmt.Sprintf("192.0.2.%d", first+i)
			for range 2 {
				d.Observe(p, obs(nil, ip, at, 401, "/"))
			}
		}
		d.Flush(time.Second)
	}
	burst(w0, 0, 3) // the first window: 1 written, 2 held; its timer is due at w0+1s
	time.Sleep(time.Until(w0.Add(950 * time.Millisecond)))
	burst(w0.Add(time.Second), 10, 3) // the next window, a little early: 1 written, 2 held
	time.Sleep(time.Until(w0.Add(1100 * time.Millisecond)))
	burst(w0.Add(1100*time.Millisecond), 20, 2) // 2 more held in it
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), `"count":4`) {
		if time.Now().After(deadline) {
			t.Fatalf("no single summary of the second window's 4:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := strings.Count(buf.String(), "not written individually"); n != 2 {
		t.Fatalf("%d summaries, want 2 (2 and 4):\n%s", n, buf.String())
	}
}

// A record written before records had spans (by an older gateway) still
// makes its caller known: an upgrade does not report every caller again.
func TestFirstAccess_RecordsOfBeforeTheUpgradeCount(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := policy()
	p.FirstAccess = &FirstAccess{Remember: 24 * time.Hour}
	now := t0.Add(time.Hour)
	legacy := seenKeyPrefix + digest(CallerName(alice, netip.Addr{}), "orders", "DELETE /orders/{id}")
	if _, err := st.AddCounter(ctx, legacy, 1, now.Add(24*time.Hour), now); err != nil {
		t.Fatal(err)
	}
	d := newDetector(t, Options{Seen: st, Now: func() time.Time { return now }})
	for _, who := range []*identity.Principal{alice, bob} {
		o := obs(who, "10.1.1.1", now, 200, "/orders/1")
		o.Operation, o.Sensitive = "DELETE /orders/{id}", true
		d.Observe(p, o)
	}
	ev := events(t, d)
	if len(ev) != 1 || ev[0].Caller != "key:bob" {
		t.Fatalf("events = %+v, want bob's only", ev)
	}
}

// A first-access mark of the span before stays known when marking it
// again turns the memory's generations over (the mark was in the
// generation that turns old).
func TestFirstAccess_MarkKnownAcrossATurnOfGenerations(t *testing.T) {
	d := New(Options{MaxCallers: 100}) // 6 marks a shard: a generation turns at 3
	s := &d.shards[0]
	for k := range uint64(3) {
		if !d.markSeen(s, k, 10) {
			t.Fatalf("mark %d: not new", k)
		}
	}
	// Mark 0 again in the next span, with the current generation full.
	if d.markSeen(s, 0, 11) {
		t.Fatal("a caller seen in the span before is new again")
	}
	if d.markSeen(s, 0, 11) {
		t.Fatal("marked twice in one span")
	}
	if !d.markSeen(s, 1, 13) {
		t.Fatal("a caller silent for a span is still known")
	}
}
