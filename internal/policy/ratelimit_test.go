package policy

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/ratelimit"
)

func TestRateLimit_Decisions(t *testing.T) {
	clock := t0
	newStep := func() Step {
		return RateLimit(RateLimitOptions{
			Rules: []RateRule{
				{Name: "burst", Limiter: ratelimit.NewMemory(ratelimit.NewParams(2, time.Second, 0), 100), Key: LimitKey{Parts: []KeyPart{{Kind: KeyConsumer}}}, Quota: 2, Window: 1},
				{Name: "minute", Limiter: ratelimit.NewMemory(ratelimit.NewParams(3, time.Minute, 0), 100), Key: LimitKey{Parts: []KeyPart{{Kind: KeyConsumer}}}, Quota: 3, Window: 60},
			},
			Now: func() time.Time { return clock },
		})
	}
	type req struct {
		who     string
		advance time.Duration
		status  int
		reason  string
		header  string // RateLimit
		retry   string
	}
	cases := []struct {
		name string
		reqs []req
	}{
		{"burst exhausted", []req{
			{"a", 0, 200, "", `"burst";r=1;t=1, "minute";r=2;t=20`, ""},
			{"a", 0, 200, "", `"burst";r=0;t=1, "minute";r=1;t=40`, ""},
			{"a", 0, 429, "rate_limited", `"burst";r=0;t=1`, "1"},
			{"b", 0, 200, "", `"burst";r=1;t=1, "minute";r=2;t=20`, ""},
		}},
		{"minute exhausted after the burst refills", []req{
			{"a", 0, 200, "", "", ""},
			{"a", 0, 200, "", "", ""},
			{"a", time.Second, 200, "", `"burst";r=1;t=1, "minute";r=0;t=59`, ""},
			{"a", time.Second, 429, "rate_limited", `"minute";r=0;t=58`, "18"},
		}},
		{"anonymous callers are limited by IP", []req{
			{"", 0, 200, "", "", ""},
			{"", 0, 200, "", "", ""},
			{"", 0, 429, "rate_limited", "", ""},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			step := newStep()
			for i, q := range tc.reqs {
				clock = clock.Add(q.advance)
				r := request("GET", "/", "192.0.2.1", nil, nil)
				if q.who != "" {
					r = r.WithContext(WithPrincipal(r.Context(), consumer(q.who)))
				}
				w, err, passed := run(step, r)
				status, h := w.Code, w.Header()
				if err != nil {
					status, h = err.Status, err.Header
					if err.Reason != q.reason {
						t.Errorf("request %d: reason %q, want %q", i, err.Reason, q.reason)
					}
				}
				if status != q.status || passed != (q.status == 200) {
					t.Fatalf("request %d: status %d (passed %v), want %d", i, status, passed, q.status)
				}
				if q.header != "" && h.Get("RateLimit") != q.header {
					t.Errorf("request %d: RateLimit %q, want %q", i, h.Get("RateLimit"), q.header)
				}
				if q.retry != "" && h.Get("Retry-After") != q.retry {
					t.Errorf("request %d: Retry-After %q, want %q", i, h.Get("Retry-After"), q.retry)
				}
				if h.Get("RateLimit-Policy") != `"burst";q=2;w=1, "minute";q=3;w=60` {
					t.Errorf("request %d: RateLimit-Policy %q", i, h.Get("RateLimit-Policy"))
				}
			}
		})
	}
}

// keyRecorder is a limiter other than the in-memory one: it records the
// keys it is given and asks an in-memory limiter.
type keyRecorder struct {
	m    *ratelimit.Memory
	keys []string
}

func (k *keyRecorder) Allow(ctx context.Context, key []byte, now time.Time) (ratelimit.Decision, error) {
	k.keys = append(k.keys, string(key))
	return k.m.Allow(ctx, key, now)
}

// TestRateLimit_KeysOfEveryLimiter sends callers with subjects of every
// length up to 300 bytes, past the step's key buffer, through a step with
// an in-memory limiter and one with another limiter, with the caller in
// the exchange's record or in the context: each request's decision is the
// same in both, and the other limiter gets the request's key.
func TestRateLimit_KeysOfEveryLimiter(t *testing.T) {
	params := ratelimit.NewParams(3, time.Minute, 0)
	key := LimitKey{Parts: []KeyPart{{Kind: KeySubject}, {Kind: KeyAPI}}, API: "orders"}
	clock := t0
	now := func() time.Time { return clock }
	direct := RateLimit(RateLimitOptions{Rules: []RateRule{{Name: "m", Limiter: ratelimit.NewMemory(params, 10000), Key: key, Quota: 3, Window: 60}}, Now: now})
	rec := &keyRecorder{m: ratelimit.NewMemory(params, 10000)}
	other := RateLimit(RateLimitOptions{Rules: []RateRule{{Name: "m", Limiter: rec, Key: key, Quota: 3, Window: 60}}, Now: now})
	subject := strings.Repeat("s", 300)
	for round := range 4 { // the fourth request of a subject is refused
		for n := 1; n <= len(subject); n++ {
			p := identity.NewStaticPrincipal(identity.CredentialJWT, subject[:n], "", nil, nil, nil)
			r := request("GET", "/", "192.0.2.1", nil, nil)
			if n%2 == 0 {
				ExchangeFrom(r.Context()).Record.Principal = p
			} else {
				r = r.WithContext(WithPrincipal(r.Context(), p))
			}
			wd, _, passedDirect := run(direct, r)
			wo, _, passedOther := run(other, r)
			if passedDirect != passedOther || passedDirect != (round < 3) {
				t.Fatalf("round %d, subject of %d bytes: passed %v (in-memory) and %v (other), want %v", round, n, passedDirect, passedOther, round < 3)
			}
			if a, b := wd.Header().Get("RateLimit"), wo.Header().Get("RateLimit"); a != b {
				t.Fatalf("round %d, subject of %d bytes: RateLimit %q and %q", round, n, a, b)
			}
			if got, want := rec.keys[len(rec.keys)-1], key.String(r, ExchangeFrom(r.Context()), p); got != want {
				t.Fatalf("subject of %d bytes: key %q, want %q", n, got, want)
			}
		}
	}
}

type failingLimiter struct{}

func (failingLimiter) Allow(context.Context, []byte, time.Time) (ratelimit.Decision, error) {
	return ratelimit.Decision{}, errors.New("store down")
}

// A limiter that fails refuses the request (fail closed), with 503.
func TestRateLimit_StoreErrorFailsClosed(t *testing.T) {
	step := RateLimit(RateLimitOptions{Rules: []RateRule{{Name: "x", Limiter: failingLimiter{}}}})
	_, err, passed := run(step, request("GET", "/", "192.0.2.1", nil, nil))
	if passed || err == nil || err.Status != http.StatusServiceUnavailable || err.Reason != "rate_limit_unavailable" {
		t.Fatalf("passed %v, err %v", passed, err)
	}
}

// uncheckedLimiter is a Redis limiter whose Redis failed under
// on_failure allow.
type uncheckedLimiter struct{}

func (uncheckedLimiter) Allow(context.Context, []byte, time.Time) (ratelimit.Decision, error) {
	return ratelimit.Decision{Allowed: true, Unchecked: true}, nil
}

// A rule that was not checked (Redis failed, on_failure allow) lets the
// request through and has no item in RateLimit: the others keep theirs;
// with none checked there is no RateLimit field at all. RateLimit-Policy
// stays. The same with the exchange's deferred fields.
func TestRateLimit_UncheckedRulesAdvertiseNothing(t *testing.T) {
	memory := func() RateLimiter { return ratelimit.NewMemory(ratelimit.NewParams(5, time.Minute, 0), 100) }
	key := LimitKey{Parts: []KeyPart{{Kind: KeyConsumer}}}
	for _, c := range []struct {
		name  string
		rules []RateRule
		want  string
	}{
		{"first unchecked", []RateRule{{Name: "a", Limiter: uncheckedLimiter{}, Key: key, Quota: 1, Window: 1}, {Name: "b", Limiter: memory(), Key: key, Quota: 5, Window: 60}}, `"b";r=4;t=12`},
		{"second unchecked", []RateRule{{Name: "a", Limiter: memory(), Key: key, Quota: 5, Window: 60}, {Name: "b", Limiter: uncheckedLimiter{}, Key: key, Quota: 1, Window: 1}}, `"a";r=4;t=12`},
		{"all unchecked", []RateRule{{Name: "a", Limiter: uncheckedLimiter{}, Key: key, Quota: 1, Window: 1}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			step := RateLimit(RateLimitOptions{Rules: c.rules, Now: func() time.Time { return t0 }})
			w, err, passed := run(step, request("GET", "/", "192.0.2.1", consumer("a"), nil))
			if err != nil || !passed {
				t.Fatalf("passed %v, err %v", passed, err)
			}
			if _, ok := w.Header()["Ratelimit"]; ok != (c.want != "") || w.Header().Get("Ratelimit") != c.want {
				t.Fatalf("RateLimit %q (present %v), want %q", w.Header().Get("Ratelimit"), ok, c.want)
			}
			if w.Header().Get("Ratelimit-Policy") == "" {
				t.Fatal("no RateLimit-Policy")
			}
			r := request("GET", "/", "192.0.2.1", consumer("a"), nil)
			x := ExchangeFrom(r.Context())
			x.DeferFields = true
			run(step, r)
			got := http.Header{}
			x.TakeFields(func(name, value string) { got[name] = append(got[name], value) })
			if _, ok := got["Ratelimit"]; ok != (c.want != "") {
				t.Fatalf("deferred: %v", got)
			}
		})
	}
}

// BenchmarkRateLimitStep measures the allow path against a chain without
// the step (the baseline), in the same run.
func BenchmarkRateLimitStep(b *testing.B) {
	lim := ratelimit.NewMemory(ratelimit.NewParams(1_000_000_000, time.Second, 1_000_000_000), 1000)
	step := RateLimit(RateLimitOptions{Rules: []RateRule{{Name: "burst", Limiter: lim, Key: LimitKey{Parts: []KeyPart{{Kind: KeyConsumer}}}, Quota: 1, Window: 1}}, Now: func() time.Time { return t0 }})
	r := request("GET", "/", "192.0.2.1", consumer("partner"), nil)
	w := &discardWriter{h: http.Header{}}
	for _, bc := range []struct {
		name string
		h    Handler
	}{{"baseline", Chain(nopHandler{})}, {"rate_limit", Chain(nopHandler{}, step)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				_ = bc.h.ServeHTTP(w, r)
			}
		})
	}
}

type nopHandler struct{}

func (nopHandler) ServeHTTP(http.ResponseWriter, *http.Request) error { return nil }

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// TestRateLimit_DeferFields: with the exchange's DeferFields, the step
// leaves its two fields in the exchange instead of the header map;
// PutFields sets them there once, TakeFields hands them over once, and
// both give what the same step sets in the map without DeferFields (two
// steps, each with limiters of its own, given the same requests).
func TestRateLimit_DeferFields(t *testing.T) {
	newStep := func() Step {
		return RateLimit(RateLimitOptions{
			Rules: []RateRule{
				{Name: "burst", Limiter: ratelimit.NewMemory(ratelimit.NewParams(5, time.Second, 0), 100), Key: LimitKey{Parts: []KeyPart{{Kind: KeyConsumer}}}, Quota: 5, Window: 1},
				{Name: "minute", Limiter: ratelimit.NewMemory(ratelimit.NewParams(9, time.Minute, 0), 100), Key: LimitKey{Parts: []KeyPart{{Kind: KeyConsumer}}}, Quota: 9, Window: 60},
			},
			Now: func() time.Time { return t0 },
		})
	}
	direct, deferred := newStep(), newStep()
	for i := range 3 {
		want, err, _ := run(direct, request("GET", "/", "192.0.2.1", consumer("a"), nil))
		if err != nil || want.Header().Get("Ratelimit") == "" {
			t.Fatalf("(%d) without DeferFields: err %v, header %v", i, err, want.Header())
		}
		r := request("GET", "/", "192.0.2.1", consumer("a"), nil)
		x := ExchangeFrom(r.Context())
		x.DeferFields = true
		w, err, passed := run(deferred, r)
		if err != nil || !passed || len(w.Header()) != 0 {
			t.Fatalf("(%d) with DeferFields: err %v, passed %v, the map holds %v", i, err, passed, w.Header())
		}
		if !x.HoldsFields() {
			t.Fatalf("(%d) the exchange holds no fields", i)
		}
		got := http.Header{}
		if i%2 == 0 {
			x.PutFields(got)
		} else {
			x.TakeFields(func(name, value string) { got[name] = append(got[name], value) })
		}
		if !reflect.DeepEqual(got, want.Header()) {
			t.Errorf("(%d) the exchange's fields %v, want %v", i, got, want.Header())
		}
		if x.HoldsFields() {
			t.Errorf("(%d) the exchange still holds its fields", i)
		}
		x.TakeFields(func(name, value string) { t.Errorf("(%d) given twice: %s: %s", i, name, value) })
		again := http.Header{}
		if x.PutFields(again); len(again) != 0 {
			t.Errorf("(%d) set twice: %v", i, again)
		}
	}
}
