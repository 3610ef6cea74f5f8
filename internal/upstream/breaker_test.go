package upstream

import (
	"testing"
	"testing/synctest"
	"time"
)

var testBreakerConfig = BreakerConfig{
	FailureRatio:     0.5,
	Window:           10 * time.Second,
	MinimumRequests:  4,
	OpenDuration:     5 * time.Second,
	HalfOpenRequests: 2,
}

// outcome lets one request through and reports it.
func pass(t *testing.T, b *Breaker, failed bool) {
	t.Helper()
	ticket, _, ok := b.Allow()
	if !ok {
		t.Fatalf("request refused in state %s", b.State())
	}
	b.Done(ticket, failed)
}

func refused(t *testing.T, b *Breaker) time.Duration {
	t.Helper()
	_, after, ok := b.Allow()
	if ok {
		t.Fatalf("request let through in state %s, want refused", b.State())
	}
	return after
}

func TestBreaker_StaysClosedBelowMinimumRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(&testBreakerConfig)
		for range 3 {
			pass(t, b, true)
		}
		if s := b.State(); s != BreakerClosed {
			t.Fatalf("3 failures (minimum 4): state %s, want closed", s)
		}
	})
}

func TestBreaker_OpensOnFailureRatio(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outcomes []bool // true = failed
		want     BreakerState
	}{
		{"all_ok", []bool{false, false, false, false, false}, BreakerClosed},
		{"below_ratio", []bool{false, false, true, false, false}, BreakerClosed},
		{"at_ratio", []bool{false, true, false, true}, BreakerOpen},
		{"all_failed", []bool{true, true, true, true}, BreakerOpen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := NewBreaker(&testBreakerConfig)
				for _, f := range tc.outcomes {
					pass(t, b, f)
				}
				if s := b.State(); s != tc.want {
					t.Fatalf("state %s, want %s", s, tc.want)
				}
			})
		})
	}
}

func TestBreaker_WindowSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(&testBreakerConfig)
		pass(t, b, true)
		pass(t, b, true)
		pass(t, b, true)
		time.Sleep(11 * time.Second) // those failures leave the window
		pass(t, b, true)
		pass(t, b, false)
		pass(t, b, false)
		if s := b.State(); s != BreakerClosed {
			t.Fatalf("old failures still counted: state %s", s)
		}
	})
}

func TestBreaker_OpenRefusesThenHalfOpenProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var states []BreakerState
		b := newBreaker(func(s BreakerState) { states = append(states, s) })
		b.configure(&testBreakerConfig)
		for range 4 {
			pass(t, b, true)
		}
		if after := refused(t, b); after != 5*time.Second {
			t.Fatalf("Retry-After %s, want the whole open duration 5s", after)
		}
		time.Sleep(2 * time.Second)
		if after := refused(t, b); after != 3*time.Second {
			t.Fatalf("Retry-After %s after 2s, want 3s", after)
		}
		time.Sleep(3 * time.Second)
		// Half-open: two probes, the third waits.
		p1, _, ok1 := b.Allow()
		p2, _, ok2 := b.Allow()
		if !ok1 || !ok2 {
			t.Fatal("half-open breaker refused a probe")
		}
		refused(t, b)
		b.Done(p1, false)
		if s := b.State(); s != BreakerHalfOpen {
			t.Fatalf("after one good probe of two: %s, want half_open", s)
		}
		refused(t, b) // the slot of a successful probe is not reused
		b.Done(p2, false)
		if s := b.State(); s != BreakerClosed {
			t.Fatalf("after two good probes: %s, want closed", s)
		}
		// Closed with an empty window: one failure does not reopen it.
		pass(t, b, true)
		if s := b.State(); s != BreakerClosed {
			t.Fatalf("state %s", s)
		}
		want := []BreakerState{BreakerOpen, BreakerHalfOpen, BreakerClosed}
		if len(states) != len(want) {
			t.Fatalf("transitions %v, want %v", states, want)
		}
		for i := range want {
			if states[i] != want[i] {
				t.Fatalf("transitions %v, want %v", states, want)
			}
		}
	})
}

func TestBreaker_FailedProbeReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(&testBreakerConfig)
		for range 4 {
			pass(t, b, true)
		}
		time.Sleep(5 * time.Second)
		p1, _, _ := b.Allow()
		p2, _, _ := b.Allow()
		b.Done(p1, true)
		if after := refused(t, b); after != 5*time.Second {
			t.Fatalf("reopened for %s, want 5s", after)
		}
		b.Done(p2, false) // a probe of the old half-open period: ignored
		if s := b.State(); s != BreakerOpen {
			t.Fatalf("state %s, want open", s)
		}
	})
}

// A request let through while closed that finishes after the breaker
// opened must not count in the next period.
func TestBreaker_StaleOutcomesIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(&testBreakerConfig)
		slow, _, _ := b.Allow()
		for range 4 {
			pass(t, b, true)
		}
		time.Sleep(5 * time.Second)
		probe, _, _ := b.Allow()
		b.Done(slow, true) // stale
		if s := b.State(); s != BreakerHalfOpen {
			t.Fatalf("a stale failure changed the state to %s", s)
		}
		b.Done(probe, false)
	})
}

func TestBreaker_AbandonFreesProbeSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(&testBreakerConfig)
		for range 4 {
			pass(t, b, true)
		}
		time.Sleep(5 * time.Second)
		p1, _, _ := b.Allow()
		b.Allow()
		refused(t, b)
		b.Abandon(p1)
		if _, _, ok := b.Allow(); !ok {
			t.Fatal("an abandoned probe's slot was not freed")
		}
	})
}

func TestBreaker_ReconfigureKeepsOpenState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(&testBreakerConfig)
		for range 4 {
			pass(t, b, true)
		}
		c := testBreakerConfig
		c.MinimumRequests = 100
		b.configure(&c)
		if s := b.State(); s != BreakerOpen {
			t.Fatalf("reconfigured breaker is %s, want still open", s)
		}
		b.configure(nil)
		if _, _, ok := b.Allow(); !ok {
			t.Fatal("a breaker removed from the configuration still refuses")
		}
	})
}

// TestBreaker_UnconfiguredCountsNothing: without a configuration every
// request is let through and its outcome is not counted; once configured,
// outcomes count from then on, and a ticket taken before does not.
func TestBreaker_UnconfiguredCountsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(nil)
		early, _, ok := b.Allow()
		if !ok {
			t.Fatal("an unconfigured breaker refused")
		}
		for range 10 {
			pass(t, b, true)
		}
		b.configure(&testBreakerConfig)
		if s := b.State(); s != BreakerClosed {
			t.Fatalf("state %s after configuring, want closed: failures before counted", s)
		}
		for range 3 {
			pass(t, b, true)
		}
		b.Done(early, true) // taken unconfigured: not the fourth failure
		if s := b.State(); s != BreakerClosed {
			t.Fatalf("state %s, want closed: a ticket from before the configuration counted", s)
		}
		pass(t, b, true)
		if s := b.State(); s != BreakerOpen {
			t.Fatalf("state %s after 4 failures, want open", s)
		}
	})
}
