package upstream

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestBackoff_FullJitterWithinBounds(t *testing.T) {
	base, maxD := 10*time.Millisecond, 100*time.Millisecond
	for _, tc := range []struct {
		retry int
		ceil  time.Duration
	}{
		{1, 10 * time.Millisecond},
		{2, 20 * time.Millisecond},
		{3, 40 * time.Millisecond},
		{4, 80 * time.Millisecond},
		{5, 100 * time.Millisecond},
		{30, 100 * time.Millisecond},
	} {
		lo, hi := tc.ceil, time.Duration(0)
		for range 2000 {
			d := Backoff(tc.retry, base, maxD)
			if d < 0 || d >= tc.ceil {
				t.Fatalf("retry %d: wait %s outside [0, %s)", tc.retry, d, tc.ceil)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter spreads over the whole range.
		if lo > tc.ceil/10 || hi < tc.ceil*9/10 {
			t.Errorf("retry %d: waits span [%s, %s], want most of [0, %s)", tc.retry, lo, hi, tc.ceil)
		}
	}
	if d := Backoff(1, 0, 0); d != 0 {
		t.Errorf("zero backoff gave %s", d)
	}
}

func TestBudget_BoundsRetriesToAShareOfRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(BudgetConfig{Percent: 20, MinRetries: 3, Window: 10 * time.Second})
		// No traffic: the minimum still allows a few retries.
		for i := range 3 {
			if !b.TryRetry() {
				t.Fatalf("retry %d refused within the minimum", i+1)
			}
		}
		if b.TryRetry() {
			t.Fatal("4th retry allowed with no requests and a minimum of 3")
		}
		for range 100 {
			b.Request(time.Now())
		}
		// 20% of 100 = 20 retries in the window, 3 spent.
		allowed := 0
		for b.TryRetry() {
			allowed++
			if allowed > 100 {
				t.Fatal("budget never ran out")
			}
		}
		if allowed != 17 {
			t.Fatalf("%d more retries allowed, want 17 (20%% of 100, minus 3 spent)", allowed)
		}
		// The window rolls: old requests and retries expire together.
		time.Sleep(11 * time.Second)
		for range 10 {
			b.Request(time.Now())
		}
		allowed = 0
		for b.TryRetry() {
			allowed++
		}
		if allowed != 3 {
			t.Fatalf("after the window rolled: %d retries allowed, want the minimum 3 (20%% of 10 is 2)", allowed)
		}
	})
}

func TestIdempotentMethods(t *testing.T) {
	for m, want := range map[string]bool{
		"GET": true, "HEAD": true, "OPTIONS": true, "TRACE": true, "PUT": true, "DELETE": true,
		"POST": false, "PATCH": false, "CONNECT": false, "PROPFIND": false, "get": false,
	} {
		if got := Idempotent(m); got != want {
			t.Errorf("Idempotent(%s) = %v, want %v", m, got, want)
		}
	}
}

func TestStatusSet(t *testing.T) {
	var s StatusSet
	for _, c := range []int{500, 502, 563, 564, 599, 404, 600} {
		s.Add(c)
	}
	for c, want := range map[int]bool{500: true, 501: false, 502: true, 563: true, 564: true, 599: true, 404: false, 600: false, 499: false} {
		if s.Has(c) != want {
			t.Errorf("Has(%d) = %v, want %v", c, !want, want)
		}
	}
}

func TestEjectionDuration_DoublesUpToMax(t *testing.T) {
	for n, want := range map[int]time.Duration{1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 4: 4 * time.Minute, 5: 5 * time.Minute, 60: 5 * time.Minute} {
		if got := EjectionDuration(30*time.Second, 5*time.Minute, n); got != want {
			t.Errorf("ejection %d: %s, want %s", n, got, want)
		}
	}
}
