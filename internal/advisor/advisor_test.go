package advisor

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/observe"
)

// op is an operation of the orders backend with the default deadlines
// and n answers whose p99.9 is p999.
func op(name string, n uint64, p999 time.Duration) Operation {
	return Operation{
		API: "orders", Operation: name, Backend: "orders",
		Path: "apis[0].operations[0]", Line: 12,
		Request: 30 * time.Second, Attempt: 30 * time.Second, ResponseHeader: 30 * time.Second,
		BackendPath: "backends[0]", BackendLine: 7,
		Stats: observe.UpstreamSummary{
			Requests: n, Answered: n, PeakRPS: 50,
			P50: p999 / 10, P99: p999 / 2, P999: p999, Max: 2 * p999,
		},
	}
}

func only(t *testing.T, rep Report, kind string) Suggestion {
	t.Helper()
	var found []Suggestion
	for _, s := range rep.Suggestions {
		if s.Kind == kind {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s suggestions: %+v", len(found), kind, rep.Suggestions)
	}
	return found[0]
}

func TestTimeout_LowersADeadlineFarAboveTheTail(t *testing.T) {
	rep := Advise(Input{Operations: []Operation{op("getOrder", 1000, 120*time.Millisecond)}}, Options{})
	s := only(t, rep, KindTimeout)
	if s.Action != ActionLower || s.Suggested != "500ms" || s.Current != "30s" {
		t.Fatalf("got %s %s -> %s: %s", s.Action, s.Current, s.Suggested, s.Reason)
	}
	if s.Setting != "apis[orders].operations[getOrder].timeouts.request" || s.Path != "apis[0].operations[0]" || s.Line != 12 {
		t.Errorf("setting %q path %q line %d", s.Setting, s.Path, s.Line)
	}
	if s.Patch != "timeouts:\n  request: 500ms\n" {
		t.Errorf("patch %q", s.Patch)
	}
	if s.Evidence.P999ms != 120 || s.Evidence.Answered != 1000 {
		t.Errorf("evidence %+v", s.Evidence)
	}
}

func TestTimeout_RaisesADeadlineThatCutsRealTraffic(t *testing.T) {
	o := op("search", 2000, 900*time.Millisecond)
	o.Request, o.Attempt = time.Second, time.Second
	o.Stats.TimedOut = 40 // 2% of the exchanges
	s := only(t, Advise(Input{Operations: []Operation{o}}, Options{}), KindTimeout)
	// max(3 × 900ms, 2 × 1s) = 2.7s, rounded up to 3s.
	if s.Action != ActionRaise || s.Suggested != "3s" {
		t.Fatalf("got %s -> %s: %s", s.Action, s.Suggested, s.Reason)
	}
	if !strings.Contains(s.Reason, "40 of 2040 exchanges (1.96%) ran out of time at 1s") {
		t.Errorf("reason: %s", s.Reason)
	}
}

func TestTimeout_ATailOfTimeoutsWithinTheShareIsKept(t *testing.T) {
	o := op("search", 10000, 900*time.Millisecond)
	o.Request, o.Attempt = 5*time.Second, 5*time.Second
	o.Stats.TimedOut = 5 // 0.05%
	s := only(t, Advise(Input{Operations: []Operation{o}}, Options{}), KindTimeout)
	if s.Action != ActionKeep || s.Suggested != "" || s.Patch != "" {
		t.Fatalf("got %s -> %s: %s", s.Action, s.Suggested, s.Reason)
	}
	if !strings.Contains(s.Reason, "5 exchanges (0.05%) ran out of time") {
		t.Errorf("reason: %s", s.Reason)
	}
}

func TestTimeout_HangsAreNotSavedByALongerDeadline(t *testing.T) {
	o := op("getOrder", 1000, 40*time.Millisecond)
	o.Stats.TimedOut = 50 // at 30s, while every answer came within 80ms
	s := only(t, Advise(Input{Operations: []Operation{o}}, Options{}), KindTimeout)
	if s.Action != ActionLower || s.Suggested != "200ms" {
		t.Fatalf("got %s -> %s: %s", s.Action, s.Suggested, s.Reason)
	}
	if !strings.Contains(s.Reason, "look like a backend that hangs") {
		t.Errorf("reason: %s", s.Reason)
	}
}

func TestTimeout_TheBackendsResponseHeaderBindsFirst(t *testing.T) {
	o := op("report", 1000, 1800*time.Millisecond)
	o.ResponseHeader = 2 * time.Second
	o.Stats.TimedOut = 30
	s := only(t, Advise(Input{Operations: []Operation{o}}, Options{}), KindTimeout)
	if s.Action != ActionRaise || s.Setting != "backends[orders].timeouts.response_header" || s.Path != "backends[0]" {
		t.Fatalf("got %s %s at %s: %s", s.Action, s.Setting, s.Path, s.Reason)
	}
	// max(3 × 1.8s, 2 × 2s) = 5.4s, rounded up to 10s.
	if s.Current != "2s" || s.Suggested != "10s" || s.Patch != "timeouts:\n  response_header: 10s\n" {
		t.Errorf("current %s suggested %s patch %q", s.Current, s.Suggested, s.Patch)
	}
}

func TestTimeout_ASetAttemptDeadlineIsLoweredWithTheRequest(t *testing.T) {
	o := op("getOrder", 1000, 50*time.Millisecond)
	o.Attempt, o.AttemptSet = 10*time.Second, true
	s := only(t, Advise(Input{Operations: []Operation{o}}, Options{}), KindTimeout)
	if s.Setting != "apis[orders].operations[getOrder].timeouts.upstream_attempt" || s.Current != "10s" {
		t.Errorf("setting %q current %q", s.Setting, s.Current)
	}
	// The patch must leave a valid configuration: upstream_attempt may not
	// exceed request.
	if s.Action != ActionLower || s.Patch != "timeouts:\n  request: 200ms\n  upstream_attempt: 200ms\n" {
		t.Errorf("got %s, patch %q", s.Action, s.Patch)
	}
}

// A lowered deadline leaves the backend's retries their time: each
// attempt gets the target, the request every attempt and the longest
// backoffs between them.
func TestTimeout_LoweringLeavesRetriesTheirTime(t *testing.T) {
	o := op("getOrder", 1000, 50*time.Millisecond)
	o.MaxRetries, o.BackoffBase, o.BackoffMax = 2, 25*time.Millisecond, 250*time.Millisecond
	s := only(t, Advise(Input{Operations: []Operation{o}}, Options{}), KindTimeout)
	// 3 × 200ms + 25ms + 50ms = 675ms, rounded up to 1s.
	if s.Action != ActionLower || s.Suggested != "1s (upstream_attempt 200ms)" ||
		s.Patch != "timeouts:\n  request: 1s\n  upstream_attempt: 200ms\n" {
		t.Fatalf("got %s -> %s, patch %q", s.Action, s.Suggested, s.Patch)
	}
}

// When upstream_attempt is the deadline that fires, it is what a raise
// changes; the request deadline is never lowered by a raise.
func TestTimeout_RaiseChangesTheDeadlineThatFires(t *testing.T) {
	o := op("search", 2000, 900*time.Millisecond)
	o.Attempt, o.AttemptSet = time.Second, true // request stays 30s
	o.Stats.TimedOut = 40
	s := only(t, Advise(Input{Operations: []Operation{o}}, Options{}), KindTimeout)
	if s.Action != ActionRaise || s.Setting != "apis[orders].operations[search].timeouts.upstream_attempt" ||
		s.Current != "1s" || s.Suggested != "3s" || s.Patch != "timeouts:\n  upstream_attempt: 3s\n" {
		t.Fatalf("got %s %s %s -> %s, patch %q", s.Action, s.Setting, s.Current, s.Suggested, s.Patch)
	}
	// Attempt and request equal: both fire, both are raised.
	o.Request = time.Second
	s = only(t, Advise(Input{Operations: []Operation{o}}, Options{}), KindTimeout)
	if s.Patch != "timeouts:\n  request: 3s\n  upstream_attempt: 3s\n" {
		t.Fatalf("patch %q", s.Patch)
	}
}

// With the defaults the request deadline and the backend's
// response_header are both 30s: a raise must move both, or the other
// still fires at 30s. Operations of one backend share one
// response_header suggestion, with the largest value.
func TestTimeout_ARaiseMovesEveryDeadlineThatFiresWithIt(t *testing.T) {
	a := op("report", 1000, 20*time.Second)
	a.Stats.TimedOut = 30
	b := op("export", 1000, 25*time.Second)
	b.Stats.TimedOut = 50
	b.Request, b.Attempt = 40*time.Second, 40*time.Second // response_header 30s fires first
	rep := Advise(Input{Operations: []Operation{a, b}}, Options{})
	var got []string
	for _, s := range rep.Suggestions {
		got = append(got, s.Action+" "+s.Setting+" "+s.Current+" -> "+s.Suggested+" | "+strings.ReplaceAll(s.Patch, "\n", "/"))
	}
	want := []string{
		// 2 × 30s = 1m; 3 × 25s = 75s: 2m for the backend.
		"raise backends[orders].timeouts.response_header 30s -> 2m | timeouts:/  response_header: 2m/",
		"raise apis[orders].operations[report].timeouts.request 30s -> 1m | timeouts:/  request: 1m/",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if l := rep.Suggestions[0].Line; l != 7 {
		t.Errorf("the backend's line: %d", l)
	}
}

// Fewer than five timeouts do not raise a deadline, whatever their share.
func TestTimeout_AFewTimeoutsDoNotRaise(t *testing.T) {
	o := op("search", 500, 900*time.Millisecond)
	o.Request, o.Attempt = time.Second, time.Second
	o.Stats.TimedOut = 4
	s := only(t, Advise(Input{Operations: []Operation{o}}, Options{}), KindTimeout)
	if s.Action != ActionKeep || !strings.Contains(s.Reason, "fewer than the 5 a raise needs") {
		t.Fatalf("got %s: %s", s.Action, s.Reason)
	}
}

func TestTimeout_WaitsForEnoughExchanges(t *testing.T) {
	o := op("getOrder", 499, 50*time.Millisecond)
	s := only(t, Advise(Input{Operations: []Operation{o}}, Options{}), KindTimeout)
	if s.Action != ActionWait || s.Patch != "" || s.Reason != "499 of the 500 backend exchanges needed so far" {
		t.Fatalf("got %s: %s", s.Action, s.Reason)
	}
	s = only(t, Advise(Input{Operations: []Operation{o}}, Options{MinSamples: 100}), KindTimeout)
	if s.Action != ActionLower {
		t.Errorf("with min_samples 100: %s", s.Action)
	}
	// An operation whose requests never reached the backend (refused, or
	// preflights) gets nothing, not even a wait.
	o.Stats = observe.UpstreamSummary{Requests: 200, PeakRPS: 0}
	if rep := Advise(Input{Operations: []Operation{o}, Backends: []Backend{{Name: "orders"}}}, Options{}); len(rep.Suggestions) != 0 {
		t.Errorf("no traffic: %+v", rep.Suggestions)
	}
}

func TestTimeout_TheAPIsCatchAllIsNamedByTheAPI(t *testing.T) {
	o := op("*", 1000, 50*time.Millisecond)
	o.Path = "apis[0]"
	s := only(t, Advise(Input{Operations: []Operation{o}}, Options{}), KindTimeout)
	if s.Setting != "apis[orders].timeouts.request" || s.Path != "apis[0]" {
		t.Errorf("setting %q path %q", s.Setting, s.Path)
	}
}

func TestConcurrency(t *testing.T) {
	a := op("getOrder", 3000, 200*time.Millisecond) // p99 100ms at 50 rps: 5 in flight
	b := op("listOrders", 3000, 400*time.Millisecond)
	b.Stats.PeakRPS = 100 // p99 200ms at 100 rps: 20 in flight
	other := op("ping", 3000, 10*time.Millisecond)
	other.Backend = "health"
	ops := []Operation{a, b, other}

	s := only(t, Advise(Input{Operations: ops, Backends: []Backend{{Name: "orders", Path: "backends[0]", Line: 3}}}, Options{}), KindConcurrency)
	// 2 × 25 = 50.
	if s.Action != ActionAdd || s.Current != "none" || s.Suggested != "50" || s.Evidence.InFlight != 25 || s.Evidence.PeakRPS != 150 {
		t.Fatalf("add: %+v", s)
	}
	if s.Patch != "max_concurrent_requests: 50\n" || s.Setting != "backends[orders].max_concurrent_requests" || s.Line != 3 {
		t.Errorf("patch %q setting %q line %d", s.Patch, s.Setting, s.Line)
	}

	s = only(t, Advise(Input{Operations: ops, Backends: []Backend{{Name: "orders", MaxConcurrent: 100}}}, Options{}), KindConcurrency)
	if s.Action != ActionKeep || s.Suggested != "" {
		t.Errorf("keep: %s %s", s.Action, s.Reason)
	}

	ops[1].Stats.Limited = 7
	s = only(t, Advise(Input{Operations: ops, Backends: []Backend{{Name: "orders", MaxConcurrent: 40}}}, Options{}), KindConcurrency)
	if s.Action != ActionRaise || s.Suggested != "100" || !strings.HasPrefix(s.Reason, "7 requests were refused by the limit of 40") {
		t.Errorf("raise: %s %s: %s", s.Action, s.Suggested, s.Reason)
	}

	// A quiet backend still gets at least the floor.
	q := op("getOrder", 600, 20*time.Millisecond)
	q.Stats.PeakRPS = 3
	s = only(t, Advise(Input{Operations: []Operation{q}, Backends: []Backend{{Name: "orders"}}}, Options{}), KindConcurrency)
	if s.Suggested != "10" {
		t.Errorf("floor: %s", s.Suggested)
	}

	q.Stats.Answered, q.Stats.Requests = 100, 100
	s = only(t, Advise(Input{Operations: []Operation{q}, Backends: []Backend{{Name: "orders"}}}, Options{}), KindConcurrency)
	if s.Action != ActionWait {
		t.Errorf("wait: %s", s.Action)
	}
	if rep := Advise(Input{Operations: []Operation{q}, Backends: []Backend{{Name: "idle"}}}, Options{}); len(rep.Suggestions) != 1 {
		t.Errorf("a backend without traffic is listed: %+v", rep.Suggestions)
	}
}

func TestAdvise_ChangesComeFirst(t *testing.T) {
	keep := op("a-keep", 1000, 5*time.Second)
	wait := op("b-wait", 10, time.Millisecond)
	lower := op("c-lower", 1000, time.Millisecond)
	raise := op("d-raise", 1000, 900*time.Millisecond)
	raise.Request, raise.Attempt = time.Second, time.Second
	raise.Stats.TimedOut = 100
	rep := Advise(Input{Operations: []Operation{keep, wait, lower, raise}}, Options{})
	var got []string
	for _, s := range rep.Suggestions {
		got = append(got, s.Action)
	}
	if strings.Join(got, ",") != "raise,lower,keep,wait" {
		t.Errorf("order %v", got)
	}
	if rep.Window != "24h" || rep.MinSamples != DefaultMinSamples {
		t.Errorf("report %+v", rep)
	}
}

func TestNiceValues(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		want string
	}{
		{0, "1ms"}, {time.Microsecond, "1ms"}, {100 * time.Millisecond, "100ms"}, {101 * time.Millisecond, "200ms"},
		{250 * time.Millisecond, "300ms"}, {360 * time.Millisecond, "500ms"}, {2700 * time.Millisecond, "3s"},
		{4 * time.Second, "5s"}, {6 * time.Second, "10s"}, {75 * time.Second, "2m"}, {4 * time.Minute, "5m"},
		{45 * time.Minute, "1h"}, {25 * time.Second, "30s"}, {40 * time.Second, "1m"}, {11 * time.Minute, "15m"}, {2 * time.Hour, "2h"},
	} {
		if got := formatDuration(niceDuration(c.in)); got != c.want {
			t.Errorf("niceDuration(%v) = %s, want %s", c.in, got, c.want)
		}
	}
	for in, want := range map[int]int{0: 1, 1: 1, 9: 10, 10: 10, 11: 20, 25: 30, 31: 50, 51: 100, 999: 1000} {
		if got := niceInt(in); got != want {
			t.Errorf("niceInt(%d) = %d, want %d", in, got, want)
		}
	}
	for in, want := range map[time.Duration]string{
		1500 * time.Microsecond: "1.5ms", 90 * time.Second: "1m30s", time.Hour: "1h", 61 * time.Minute: "1h1m",
	} {
		if got := formatDuration(in); got != want {
			t.Errorf("formatDuration(%v) = %s, want %s", in, got, want)
		}
	}
}

// A limit's slot is held until the response has been read: a streamed
// answer's mean duration, not its time to the headers, is how long.
func TestConcurrency_StreamsHoldTheirSlotToTheEnd(t *testing.T) {
	o := op("download", 3000, 10*time.Millisecond) // headers within 5ms (p99)
	o.Stats.PeakRPS, o.Stats.Held = 100, 300*time.Millisecond
	s := only(t, Advise(Input{Operations: []Operation{o}, Backends: []Backend{{Name: "orders"}}}, Options{}), KindConcurrency)
	// 100 × 300ms = 30 in flight; 2× = 60, rounded up to 100.
	if s.Evidence.InFlight != 30 || s.Suggested != "100" {
		t.Fatalf("in flight %v, suggested %s", s.Evidence.InFlight, s.Suggested)
	}
}

// A limit that refuses most of the traffic is raised even though few
// answers came through it.
func TestConcurrency_RefusalsRaiseWithFewAnswers(t *testing.T) {
	o := op("getOrder", 400, 100*time.Millisecond)
	o.Stats.Limited = 100000
	s := only(t, Advise(Input{Operations: []Operation{o}, Backends: []Backend{{Name: "orders", MaxConcurrent: 2}}}, Options{}), KindConcurrency)
	if s.Action != ActionRaise || s.Suggested != "5" || s.Patch != "max_concurrent_requests: 5\n" {
		t.Fatalf("got %s -> %s: %s", s.Action, s.Suggested, s.Reason)
	}
	o.Stats.Limited = 4
	s = only(t, Advise(Input{Operations: []Operation{o}, Backends: []Backend{{Name: "orders", MaxConcurrent: 2}}}, Options{}), KindConcurrency)
	if s.Action != ActionWait {
		t.Fatalf("four refusals: %s", s.Action)
	}
}
