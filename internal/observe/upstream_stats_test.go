package observe

import (
	"testing"
	"time"
)

func TestUpstream_SummarizesTheDay(t *testing.T) {
	clk := newFakeClock()
	s := NewStats(clk.Now)
	r := s.Route("orders", "get")
	if got := r.Upstream(); got.Requests != 0 || !got.Since.IsZero() || got.P99 != 0 {
		t.Fatalf("empty: %+v", got)
	}
	start := clk.Now()
	// 1000 answers: 990 at 20ms, 9 at 200ms, 1 at 2s; 3 timeouts, 2
	// refused by the concurrency limit, 5 that never reached the backend.
	for i := range 1000 {
		d := 20 * time.Millisecond
		switch {
		case i == 999:
			d = 2 * time.Second
		case i >= 990:
			d = 200 * time.Millisecond
		}
		r.ObserveExchange(200, d+time.Millisecond, Exchange{Upstream: d, Outcome: Answered}, clk.Now())
		if i%100 == 99 {
			clk.Advance(time.Second) // ten seconds of 100 requests each
		}
	}
	for range 3 {
		r.ObserveExchange(504, time.Second, Exchange{Upstream: time.Second, Outcome: TimedOut}, clk.Now())
	}
	for range 2 {
		r.ObserveExchange(503, 0, Exchange{Outcome: Limited}, clk.Now())
	}
	for range 5 {
		r.ObserveExchange(401, 0, Exchange{}, clk.Now())
	}
	// Clients that gave up waiting for the backend: after 3s and 7s.
	r.ObserveExchange(499, 3*time.Second, Exchange{Upstream: 3 * time.Second, Outcome: Abandoned}, clk.Now())
	r.ObserveExchange(499, 7*time.Second, Exchange{Upstream: 7 * time.Second, Outcome: Abandoned}, clk.Now())
	got := r.Upstream()
	if got.Requests != 1012 || got.Answered != 1000 || got.TimedOut != 3 || got.Limited != 2 || got.Abandoned != 2 || got.AbandonedMax != 7*time.Second {
		t.Errorf("counts: %+v", got)
	}
	if got.PeakRPS != 100 {
		t.Errorf("peak: %d requests in one second, want 100", got.PeakRPS)
	}
	within := func(name string, got, want time.Duration) {
		t.Helper()
		if got < want || float64(got) > float64(want)*1.13 {
			t.Errorf("%s = %v, want %v to 12.5%% above", name, got, want)
		}
	}
	within("p50", got.P50, 20*time.Millisecond)
	within("p99", got.P99, 20*time.Millisecond)
	within("p99.9", got.P999, 200*time.Millisecond)
	within("max", got.Max, 2*time.Second)
	if want := start.Truncate(time.Hour).UTC(); !got.Since.Equal(want) {
		t.Errorf("since %v, want %v", got.Since, want)
	}
	// Observe without an exchange still counts the request and its second.
	r.Observe(200, time.Millisecond)
	if n := r.Upstream().Requests; n != 1013 {
		t.Errorf("requests after Observe: %d", n)
	}
}

func TestUpstream_KeepsTwentyFourHours(t *testing.T) {
	clk := newFakeClock()
	s := NewStats(clk.Now)
	r := s.Route("a", "x")
	first := clk.Now()
	for h := range 30 {
		for range h + 1 {
			r.ObserveExchange(200, time.Millisecond, Exchange{Upstream: time.Millisecond, Outcome: Answered}, clk.Now())
		}
		if h < 29 {
			clk.Advance(time.Hour)
		}
	}
	// Hours 6..29 remain: (7 + 30) * 24 / 2 requests.
	got := r.Upstream()
	if want := uint64((7 + 30) * 24 / 2); got.Requests != want || got.Answered != want {
		t.Errorf("requests %d answered %d, want %d", got.Requests, got.Answered, want)
	}
	if want := first.Add(6 * time.Hour).Truncate(time.Hour).UTC(); !got.Since.Equal(want) {
		t.Errorf("since %v, want %v", got.Since, want)
	}
	clk.Advance(24 * time.Hour)
	if got := r.Upstream(); got.Requests != 0 || !got.Since.IsZero() {
		t.Errorf("a day later: %+v", got)
	}
}

func TestUpstream_ObserveDoesNotAllocate(t *testing.T) {
	r := NewStats(nil).Route("a", "x")
	x := Exchange{Upstream: 3 * time.Millisecond, Outcome: Answered}
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { r.ObserveExchange(200, 4*time.Millisecond, x, now) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// The busiest second counts requests that called the backend, not those
// refused before it (a flood of 401s says nothing of the backend's load);
// Held is the mean whole duration of answered requests.
func TestUpstream_PeakAndHeldCountTheBackendsShare(t *testing.T) {
	clk := newFakeClock()
	r := NewStats(clk.Now).Route("a", "x")
	for range 500 {
		r.ObserveExchange(401, time.Millisecond, Exchange{}, clk.Now())
	}
	for i := range 10 {
		// A streamed answer: headers after 10ms, the whole after 1s or 3s.
		d := time.Second
		if i%2 == 1 {
			d = 3 * time.Second
		}
		r.ObserveExchange(200, d, Exchange{Upstream: 10 * time.Millisecond, Outcome: Answered}, clk.Now())
	}
	r.ObserveExchange(503, 0, Exchange{Outcome: Limited}, clk.Now())
	r.ObserveExchange(504, time.Second, Exchange{Upstream: time.Second, Outcome: TimedOut}, clk.Now())
	got := r.Upstream()
	if got.PeakRPS != 12 || got.Requests != 512 {
		t.Errorf("peak %d of %d requests, want 12 (answered, limited, timed out)", got.PeakRPS, got.Requests)
	}
	if got.Held != 2*time.Second {
		t.Errorf("held %v, want the 2s mean of the answered", got.Held)
	}
	clk.Advance(time.Second)
	for range 3 {
		r.ObserveExchange(200, time.Millisecond, Exchange{Upstream: time.Millisecond, Outcome: Answered}, clk.Now())
	}
	if got := r.Upstream(); got.PeakRPS != 12 {
		t.Errorf("a quieter second changed the peak to %d", got.PeakRPS)
	}
}

// A change of the deadline forgets the day's timeouts, a change of the
// limit its refusals; the latencies stay, and the same settings again
// change nothing.
func TestUpstream_SettingsChangeForgetsWhatTheyJudged(t *testing.T) {
	clk := newFakeClock()
	r := NewStats(clk.Now).Route("a", "x")
	r.SetUpstreamSettings(time.Second, 10)
	record := func() {
		r.ObserveExchange(200, time.Millisecond, Exchange{Upstream: time.Millisecond, Outcome: Answered}, clk.Now())
		r.ObserveExchange(504, time.Second, Exchange{Upstream: time.Second, Outcome: TimedOut}, clk.Now())
		r.ObserveExchange(503, 0, Exchange{Outcome: Limited}, clk.Now())
		r.ObserveExchange(499, time.Second/2, Exchange{Upstream: time.Second / 2, Outcome: Abandoned}, clk.Now())
	}
	record()
	clk.Advance(2 * time.Hour)
	record()
	r.SetUpstreamSettings(time.Second, 10)
	if got := r.Upstream(); got.TimedOut != 2 || got.Limited != 2 {
		t.Fatalf("unchanged settings: %+v", got)
	}
	r.SetUpstreamSettings(2*time.Second, 10)
	if got := r.Upstream(); got.TimedOut != 0 || got.Abandoned != 0 || got.AbandonedMax != 0 || got.Limited != 2 || got.Answered != 2 {
		t.Fatalf("after a new deadline: %+v", got)
	}
	record()
	r.SetUpstreamSettings(2*time.Second, 20)
	if got := r.Upstream(); got.TimedOut != 1 || got.Limited != 0 || got.Answered != 3 {
		t.Fatalf("after a new limit: %+v", got)
	}
}

// The hours a process saves, read back by another (the same gateway
// after a restart, or another sharing the store), summarize as they did
// where they were kept; timeouts judged against another deadline and
// refusals under another limit are left out; the busiest second is one
// process's, not a sum.
func TestUpstream_HoursSavedAndReadBack(t *testing.T) {
	clk := newFakeClock()
	before := NewStats(clk.Now).Route("a", "x")
	before.SetUpstreamSettings(time.Second, 10)
	for i := range 300 {
		before.ObserveExchange(200, 20*time.Millisecond, Exchange{Upstream: time.Duration(i+1) * time.Millisecond, Outcome: Answered}, clk.Now())
		if i%100 == 99 {
			clk.Advance(time.Hour)
		}
	}
	before.ObserveExchange(504, time.Second, Exchange{Upstream: time.Second, Outcome: TimedOut}, clk.Now())
	before.ObserveExchange(503, 0, Exchange{Outcome: Limited}, clk.Now())
	before.ObserveExchange(499, time.Second/2, Exchange{Upstream: time.Second / 2, Outcome: Abandoned}, clk.Now())
	want := before.Upstream()

	var saved []UpstreamHour
	for _, h := range before.UpstreamHours() {
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back UpstreamHour
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		saved = append(saved, back)
	}
	if len(saved) != 4 {
		t.Fatalf("%d hours saved, want 4", len(saved))
	}
	after := NewStats(clk.Now).Route("a", "x")
	after.SetUpstreamSettings(time.Second, 10)
	if got := after.UpstreamWith(saved); got != want {
		t.Fatalf("read back:\n got %+v\nwant %+v", got, want)
	}
	// The same traffic here too: counts add up, the busiest second does not.
	for range 100 {
		after.ObserveExchange(200, time.Millisecond, Exchange{Upstream: time.Millisecond, Outcome: Answered}, clk.Now())
	}
	if got := after.UpstreamWith(saved); got.Answered != 400 || got.PeakRPS != want.PeakRPS || got.Requests != want.Requests+100 {
		t.Fatalf("with traffic of its own: %+v (peak before %d)", got, want.PeakRPS)
	}
	other := NewStats(clk.Now).Route("a", "x")
	other.SetUpstreamSettings(2*time.Second, 20)
	if got := other.UpstreamWith(saved); got.TimedOut != 0 || got.Abandoned != 0 || got.Limited != 0 || got.Answered != 300 {
		t.Fatalf("under other settings: %+v", got)
	}
	// A day later they are out of the window.
	clk.Advance(24 * time.Hour)
	if got := after.UpstreamWith(saved); got.Requests != 0 {
		t.Fatalf("a day later: %+v", got)
	}

	var h UpstreamHour
	for _, bad := range []string{`{"v":2,"hour":1}`, `{"v":1,"bins":[[99999,1]]}`, `not json`} {
		if err := h.UnmarshalBinary([]byte(bad)); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}
