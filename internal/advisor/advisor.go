// Package advisor turns what the gateway observed of each operation's
// upstream exchanges over the last day into suggested settings: the
// operation's request deadline (timeouts.request) from the latency of
// its backend's answers and the timeouts it hit, and a backend's
// max_concurrent_requests from its busiest second and its latency
// (Little's law). The rules are in docs/suggestions.md; this package
// applies them to numbers it is given and reads nothing itself.
package advisor

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/observe"
)

// DefaultMinSamples is how many upstream exchanges of an operation (its
// backend's answers and its timeouts) the suggestions want before they
// propose anything for it.
const DefaultMinSamples = 500

// The bounds of the rules (docs/suggestions.md).
const (
	// tailFactor is how far above the slowest 0.1% of answers the
	// suggested deadline sits.
	tailFactor = 3
	// minTimeout is the smallest deadline suggested.
	minTimeout = 100 * time.Millisecond
	// lowerFactor: a deadline more than this many times the suggested
	// one is suggested lower.
	lowerFactor = 10
	// timeoutShare is the share of exchanges that may run out of time
	// before the deadline is suggested higher (0.1%: the tail a
	// deadline is there to cut); minEvents is how many timeouts, or
	// refusals by a concurrency limit, a raise needs at least.
	timeoutShare = 0.001
	minEvents    = 5
	// concurrencyHeadroom multiplies the estimated requests in flight at
	// the busiest second; minConcurrency is the smallest limit suggested.
	concurrencyHeadroom = 2
	minConcurrency      = 10
)

// Operation is what the advisor knows of one operation.
type Operation struct {
	API       string
	Operation string
	Backend   string
	// Path is where the operation is configured (apis[0].operations[1];
	// apis[0] for an API without operations), Line its line in the
	// configuration file (0: unknown).
	Path string
	Line int
	// Request is the operation's effective request deadline, Attempt its
	// attempt deadline and AttemptSet whether upstream_attempt was
	// configured (rather than defaulting to the request deadline).
	Request    time.Duration
	Attempt    time.Duration
	AttemptSet bool
	// ResponseHeader is the backend's response_header timeout, which
	// bounds each attempt too; BackendPath is where the backend is
	// configured (backends[2]).
	ResponseHeader time.Duration
	BackendPath    string
	BackendLine    int
	// MaxRetries, BackoffBase and BackoffMax are the backend's retries:
	// a lowered request deadline leaves them their time.
	MaxRetries  int
	BackoffBase time.Duration
	BackoffMax  time.Duration
	Stats       observe.UpstreamSummary
}

// Backend is what the advisor knows of one backend.
type Backend struct {
	Name string
	Path string // backends[2]
	Line int
	// MaxConcurrent is max_concurrent_requests (0: no limit).
	MaxConcurrent int
}

// Input is everything the advisor reads.
type Input struct {
	Operations []Operation
	Backends   []Backend
}

// Options tune the advisor.
type Options struct {
	// MinSamples: see DefaultMinSamples (0: the default).
	MinSamples uint64
}

// Kinds of suggestion.
const (
	KindTimeout     = "timeout"
	KindConcurrency = "concurrency"
)

// Actions.
const (
	ActionRaise = "raise" // the setting cuts off or refuses real traffic
	ActionLower = "lower" // the setting is far above anything observed
	ActionAdd   = "add"   // the setting is not configured
	ActionKeep  = "keep"  // the setting fits what was observed
	ActionWait  = "wait"  // too little traffic to say
)

// Suggestion is one proposed setting, with what it rests on.
type Suggestion struct {
	Kind      string `json:"kind"`
	Action    string `json:"action"`
	API       string `json:"api,omitempty"`
	Operation string `json:"operation,omitempty"`
	Backend   string `json:"backend"`
	// Setting names the setting (apis[orders].operations[getOrder].timeouts.request).
	Setting string `json:"setting"`
	// Path is where the patch goes (apis[0].operations[1]) and Line its
	// line in the configuration file (0: unknown).
	Path      string `json:"path"`
	Line      int    `json:"line,omitempty"`
	Current   string `json:"current"`
	Suggested string `json:"suggested,omitempty"`
	Reason    string `json:"reason"`
	// Patch is the YAML to set at Path (empty for keep and wait).
	Patch    string   `json:"patch,omitempty"`
	Evidence Evidence `json:"evidence"`
}

// Evidence is what a suggestion rests on, over the window.
type Evidence struct {
	Requests uint64 `json:"requests"`
	Answered uint64 `json:"answered"`
	TimedOut uint64 `json:"timed_out"`
	Limited  uint64 `json:"limited,omitempty"`
	// Abandoned counts the requests whose client went away (499) before
	// the backend's response headers; AbandonedMaxMs is the longest of
	// those waits.
	Abandoned      uint64  `json:"abandoned,omitempty"`
	AbandonedMaxMs float64 `json:"abandoned_max_ms,omitempty"`
	PeakRPS        uint64  `json:"peak_rps"`
	P50ms          float64 `json:"p50_ms"`
	P99ms          float64 `json:"p99_ms"`
	P999ms         float64 `json:"p999_ms"`
	MaxMs          float64 `json:"max_ms"`
	// InFlight is the estimated requests in flight to the backend at its
	// busiest (concurrency suggestions).
	InFlight float64 `json:"in_flight,omitempty"`
	// Since is the start of the oldest hour with traffic.
	Since time.Time `json:"since,omitzero"`
}

// Report is the advisor's answer.
type Report struct {
	// Window is the span the statistics cover ("24h": the current hour
	// and the 23 before it; less after a restart).
	Window      string       `json:"window"`
	MinSamples  uint64       `json:"min_samples"`
	Suggestions []Suggestion `json:"suggestions"`
}

// Advise applies the rules to in. Suggestions that change something
// (raise, add, lower) come first, then keep and wait; each group by API,
// operation and backend.
func Advise(in Input, o Options) Report {
	minSamples := o.MinSamples
	if minSamples == 0 {
		minSamples = DefaultMinSamples
	}
	rep := Report{Window: "24h", MinSamples: minSamples, Suggestions: []Suggestion{}}
	// The backends' response_header raises, one per backend: the largest
	// any of its operations needs.
	headerRaises := map[string]*headerRaise{}
	for i := range in.Operations {
		op := &in.Operations[i]
		st := &op.Stats
		if st.Answered+st.TimedOut+st.Limited+st.Abandoned == 0 {
			continue // nothing reached (or asked for) the backend
		}
		s, hr := adviseTimeout(op, minSamples)
		if s != nil {
			rep.Suggestions = append(rep.Suggestions, *s)
		}
		if hr != nil {
			prev := headerRaises[hr.Backend]
			if prev == nil || hr.suggested > prev.suggested {
				if prev != nil {
					hr.Reason += "; " + prev.Reason
				}
				headerRaises[hr.Backend] = hr
			} else {
				prev.Reason += "; " + hr.Reason
			}
		}
	}
	for _, hr := range headerRaises {
		rep.Suggestions = append(rep.Suggestions, hr.Suggestion)
	}
	for i := range in.Backends {
		if s, ok := adviseConcurrency(&in.Backends[i], in.Operations, minSamples); ok {
			rep.Suggestions = append(rep.Suggestions, s)
		}
	}
	slices.SortStableFunc(rep.Suggestions, func(a, b Suggestion) int {
		return cmp.Or(
			cmp.Compare(actionRank(a.Action), actionRank(b.Action)),
			cmp.Compare(a.API, b.API),
			cmp.Compare(a.Operation, b.Operation),
			cmp.Compare(a.Backend, b.Backend),
			cmp.Compare(a.Kind, b.Kind))
	})
	return rep
}

func actionRank(a string) int {
	switch a {
	case ActionRaise:
		return 0
	case ActionAdd:
		return 1
	case ActionLower:
		return 2
	case ActionKeep:
		return 3
	}
	return 4
}

func evidenceOf(s *observe.UpstreamSummary) Evidence {
	return Evidence{
		Requests: s.Requests, Answered: s.Answered, TimedOut: s.TimedOut, Limited: s.Limited,
		Abandoned: s.Abandoned, AbandonedMaxMs: ms(s.AbandonedMax), PeakRPS: s.PeakRPS, P50ms: ms(s.P50), P99ms: ms(s.P99), P999ms: ms(s.P999), MaxMs: ms(s.Max),
		Since: s.Since,
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// headerRaise is a raise of a backend's response_header.
type headerRaise struct {
	Suggestion
	suggested time.Duration
}

// adviseTimeout applies the deadline rules to one operation: its own
// suggestion (nil when only the backend's response_header must change),
// and a raise of its backend's response_header when that is needed.
func adviseTimeout(op *Operation, minSamples uint64) (*Suggestion, *headerRaise) {
	s, h := deadlineRules(op, minSamples)
	if st := &op.Stats; s != nil && st.Abandoned > 0 {
		s.Reason += fmt.Sprintf("; %d requests were given up by their clients (499) before the backend answered, after waiting up to %s: an answer slower than its client waits is seen only as one of those, not as a timeout",
			st.Abandoned, formatDuration(st.AbandonedMax))
	}
	return s, h
}

// deadlineRules is adviseTimeout without the note on abandoned requests.
func deadlineRules(op *Operation, minSamples uint64) (*Suggestion, *headerRaise) {
	st := &op.Stats
	s := &Suggestion{
		Kind: KindTimeout, API: op.API, Operation: op.Operation, Backend: op.Backend,
		Setting: opSetting(op) + ".timeouts.request", Path: op.Path, Line: op.Line,
		Evidence: evidenceOf(st),
	}
	// The deadline a single slow answer meets is the smallest of the
	// request's, the attempt's and the backend's response_header; each
	// equal to it fires with it.
	bound := min(op.Request, op.Attempt, op.ResponseHeader)
	if op.ResponseHeader <= 0 {
		bound = min(op.Request, op.Attempt)
	}
	requestFires := op.Request == bound
	attemptFires := op.AttemptSet && op.Attempt == bound
	headerFires := op.ResponseHeader == bound
	s.Current = formatDuration(op.Request)
	switch {
	case attemptFires && !requestFires:
		s.Setting = opSetting(op) + ".timeouts.upstream_attempt"
		s.Current = formatDuration(op.Attempt)
	case headerFires && !requestFires:
		s.Current += fmt.Sprintf(" (the backend's response_header %s fires first)", formatDuration(bound))
	}
	samples := st.Answered + st.TimedOut
	if samples < minSamples {
		s.Action = ActionWait
		s.Reason = fmt.Sprintf("%d of the %d backend exchanges needed so far", samples, minSamples)
		if st.TimedOut > 0 {
			s.Reason += fmt.Sprintf("; %d ran out of time at %s", st.TimedOut, formatDuration(bound))
		}
		return s, nil
	}
	target := niceDuration(max(time.Duration(tailFactor)*st.P999, minTimeout))
	share := float64(st.TimedOut) / float64(samples)
	switch {
	case st.TimedOut >= minEvents && share > timeoutShare && bound <= lowerFactor*target:
		return raiseTimeout(op, s, bound, target, share, requestFires, attemptFires)
	case bound > lowerFactor*target:
		s.Action = ActionLower
		s.Reason = fmt.Sprintf("of %d answers the p99.9 took %s and the slowest %s, yet a backend that hangs holds each request, its upstream connection and its client for %s; %s",
			st.Answered, formatDuration(st.P999), formatDuration(st.Max), formatDuration(bound), targetWhy(target, st.P999))
		switch {
		case share > timeoutShare:
			s.Reason += fmt.Sprintf("; %d exchanges (%s) ran out of time though no answer came after %s: those look like a backend that hangs, which a longer deadline would not save, and a shorter one fails sooner", st.TimedOut, percent(share), formatDuration(st.Max))
		case st.TimedOut > 0:
			s.Reason += fmt.Sprintf("; %d exchanges (%s) ran out of time, within the 0.1%% a deadline is there to cut", st.TimedOut, percent(share))
		}
		request, attempt := lowered(op, target)
		s.Suggested = formatDuration(request)
		s.Patch = "timeouts:\n  request: " + formatDuration(request) + "\n"
		if attempt > 0 {
			s.Suggested += " (upstream_attempt " + formatDuration(attempt) + ")"
			s.Patch += "  upstream_attempt: " + formatDuration(attempt) + "\n"
			if op.MaxRetries > 0 {
				s.Reason += fmt.Sprintf("; each attempt gets %s and the request enough for the backend's %d retries and their backoff", formatDuration(attempt), op.MaxRetries)
			}
		}
	default:
		s.Action = ActionKeep
		s.Reason = fmt.Sprintf("the deadline %s is within %d× of the target %s (of %d answers the p99.9 took %s; %s)",
			formatDuration(bound), lowerFactor, formatDuration(target), st.Answered, formatDuration(st.P999), targetWhy(target, st.P999))
		if st.TimedOut > 0 {
			s.Reason += fmt.Sprintf("; %d exchanges (%s) ran out of time, within the 0.1%% a deadline is there to cut", st.TimedOut, percent(share))
			if st.TimedOut < minEvents && share > timeoutShare {
				s.Reason += fmt.Sprintf(" or fewer than the %d a raise needs", minEvents)
			}
		}
	}
	return s, nil
}

// raiseTimeout builds the raise of the deadline that fires: the
// operation's request or attempt deadline, and, when the backend's
// response_header would still fire before the new value, that too.
func raiseTimeout(op *Operation, s *Suggestion, bound, target time.Duration, share float64, requestFires, attemptFires bool) (*Suggestion, *headerRaise) {
	st := &op.Stats
	up := niceDuration(max(target, 2*bound))
	why := fmt.Sprintf("%d of %d exchanges (%s) ran out of time at %s; the answers that came had a p99.9 of %s, so the backend's true tail is longer than the deadline lets it be",
		st.TimedOut, st.Answered+st.TimedOut, percent(share), formatDuration(bound), formatDuration(st.P999))
	var patch string
	if attemptFires {
		patch += "  upstream_attempt: " + formatDuration(up) + "\n"
	}
	if requestFires || op.Request < up && attemptFires {
		patch = "  request: " + formatDuration(max(op.Request, up)) + "\n" + patch
	}
	var hr *headerRaise
	if op.ResponseHeader > 0 && op.ResponseHeader < up {
		hr = &headerRaise{suggested: up, Suggestion: Suggestion{
			Kind: KindTimeout, Action: ActionRaise, Backend: op.Backend,
			Setting: "backends[" + op.Backend + "].timeouts.response_header", Path: op.BackendPath, Line: op.BackendLine,
			Current: formatDuration(op.ResponseHeader), Suggested: formatDuration(up),
			Patch:    "timeouts:\n  response_header: " + formatDuration(up) + "\n",
			Reason:   fmt.Sprintf("%s: %s (it bounds every attempt of every operation of the backend)", opSetting(op), why),
			Evidence: evidenceOf(st),
		}}
	}
	if patch == "" {
		return nil, hr // only the backend's response_header fired
	}
	s.Action = ActionRaise
	s.Suggested = formatDuration(up)
	s.Reason = why
	if hr != nil {
		s.Reason += fmt.Sprintf("; the backend's response_header (%s) must be raised with it", formatDuration(op.ResponseHeader))
	}
	s.Patch = "timeouts:\n" + patch
	return s, hr
}

// lowered returns the request and attempt deadlines of a lower
// suggestion: the target alone without retries; with retries, the target
// per attempt and a request deadline with room for every retry and the
// longest backoffs. attempt is 0 when it need not be set.
func lowered(op *Operation, target time.Duration) (request, attempt time.Duration) {
	if op.MaxRetries <= 0 {
		if op.AttemptSet {
			return target, target
		}
		return target, 0
	}
	need := time.Duration(op.MaxRetries+1) * target
	ceil := op.BackoffBase
	for n := 1; n <= op.MaxRetries; n++ {
		need += min(ceil, op.BackoffMax)
		ceil *= 2
	}
	return niceDuration(need), target
}

// targetWhy says where a target deadline comes from.
func targetWhy(target, p999 time.Duration) string {
	if tailFactor*p999 <= minTimeout {
		return fmt.Sprintf("%s is the shortest deadline suggested (%d× that p99.9 is less)", formatDuration(target), tailFactor)
	}
	return fmt.Sprintf("%s is %d× that p99.9, rounded up", formatDuration(target), tailFactor)
}

// opSetting names an operation by its API's and its own names.
func opSetting(op *Operation) string {
	if op.Operation == "*" {
		return "apis[" + op.API + "]"
	}
	return "apis[" + op.API + "].operations[" + op.Operation + "]"
}

// adviseConcurrency applies the concurrency rules to one backend; false
// when no operation routed to it called it.
func adviseConcurrency(b *Backend, ops []Operation, minSamples uint64) (Suggestion, bool) {
	s := Suggestion{
		Kind: KindConcurrency, Backend: b.Name,
		Setting: "backends[" + b.Name + "].max_concurrent_requests", Path: b.Path, Line: b.Line,
		Current: "none",
	}
	if b.MaxConcurrent > 0 {
		s.Current = fmt.Sprint(b.MaxConcurrent)
	}
	var samples uint64
	var inFlight float64
	seen := false
	for i := range ops {
		op := &ops[i]
		st := &op.Stats
		if op.Backend != b.Name || st.Answered+st.TimedOut+st.Limited+st.Abandoned == 0 {
			continue
		}
		seen = true
		samples += st.Answered + st.TimedOut
		e := &s.Evidence
		e.Requests += st.Requests
		e.Answered += st.Answered
		e.TimedOut += st.TimedOut
		e.Limited += st.Limited
		e.Abandoned += st.Abandoned
		e.AbandonedMaxMs = max(e.AbandonedMaxMs, ms(st.AbandonedMax))
		e.PeakRPS += st.PeakRPS
		e.P99ms = max(e.P99ms, ms(st.P99))
		e.P999ms = max(e.P999ms, ms(st.P999))
		e.MaxMs = max(e.MaxMs, ms(st.Max))
		if !st.Since.IsZero() && (e.Since.IsZero() || st.Since.Before(e.Since)) {
			e.Since = st.Since
		}
		// Little's law at the operation's busiest second: each request
		// holds a slot of the limit until its response has been read
		// (a stream, an upgraded connection), so the time it stays is the
		// larger of the p99 to the headers and the mean whole duration.
		inFlight += float64(st.PeakRPS) * max(st.P99, st.Held).Seconds()
	}
	if !seen {
		return s, false
	}
	s.Evidence.InFlight = math.Round(inFlight*100) / 100
	want := niceInt(max(int(math.Ceil(concurrencyHeadroom*inFlight)), minConcurrency))
	est := fmt.Sprintf("at their busiest seconds the backend's operations took %d requests/s, which at their p99 latencies (or, for responses streamed longer, their mean duration) keeps about %.2f in flight",
		s.Evidence.PeakRPS, inFlight)
	if b.MaxConcurrent > 0 && s.Evidence.Limited >= minEvents {
		// Refusals are evidence however few answers there were.
		s.Action = ActionRaise
		up := 2 * b.MaxConcurrent
		if samples >= minSamples {
			up = max(want, up)
		}
		s.Suggested = fmt.Sprint(niceInt(up))
		s.Reason = fmt.Sprintf("%d requests were refused by the limit of %d", s.Evidence.Limited, b.MaxConcurrent)
		if samples >= minSamples {
			s.Reason += "; " + est
		}
		s.Patch = "max_concurrent_requests: " + s.Suggested + "\n"
		return s, true
	}
	if samples < minSamples {
		s.Action = ActionWait
		s.Reason = fmt.Sprintf("%d of the %d backend exchanges needed so far", samples, minSamples)
		return s, true
	}
	switch {
	case b.MaxConcurrent == 0:
		s.Action = ActionAdd
		s.Suggested = fmt.Sprint(want)
		s.Reason = est + fmt.Sprintf("; a limit of %d (%d× that, at least %d) answers 503 at once when the backend slows down, rather than piling up requests on it", want, concurrencyHeadroom, minConcurrency)
		s.Patch = "max_concurrent_requests: " + s.Suggested + "\n"
	default:
		s.Action = ActionKeep
		s.Reason = est + fmt.Sprintf("; the limit of %d refused %d requests", b.MaxConcurrent, s.Evidence.Limited)
	}
	return s, true
}

// niceDuration rounds d up to a value one would write in configuration:
// 1, 2, 3 or 5 times a power of ten milliseconds below a second, then 1,
// 2, 3, 5, 10, 15, 20 or 30 seconds or minutes, then whole hours.
func niceDuration(d time.Duration) time.Duration {
	d = max(d, time.Millisecond)
	if d < time.Second {
		m := float64(d) / float64(time.Millisecond)
		return time.Duration(niceFloat(m) * float64(time.Millisecond))
	}
	for _, unit := range []time.Duration{time.Second, time.Minute} {
		for _, n := range []time.Duration{1, 2, 3, 5, 10, 15, 20, 30} {
			if n*unit >= d {
				return n * unit
			}
		}
	}
	return (d + time.Hour - 1) / time.Hour * time.Hour
}

// niceInt rounds n up to 1, 2, 3 or 5 times a power of ten.
func niceInt(n int) int {
	return int(niceFloat(float64(max(n, 1))))
}

func niceFloat(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, f := range []float64{1, 2, 3, 5, 10} {
		if c := f * p; c >= v*(1-1e-9) {
			return c
		}
	}
	return 10 * p
}

// formatDuration writes d as configuration would: 250ms, 2s, 1m30s, 5m.
func formatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second && d%time.Millisecond == 0:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func percent(f float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", f*100), "0"), ".") + "%"
}
