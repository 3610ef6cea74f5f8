package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/advisor"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
)

const adviceConfig = `
backends:
  - name: be
    instances: [{url: "{{.A}}"}]
    max_concurrent_requests: 1
apis:
  - name: orders
    backend: be
    auth: {anonymous: true}
    operations:
      - name: fast
        method: GET
        path: /fast
{{.FastExtra}}
      - {name: slow, method: GET, path: /slow, timeouts: {request: {{.Slow}}}}
      - {name: held, method: GET, path: /held}
      - {name: mocked, method: GET, path: /mock, mock: {body: "hi"}}
`

// The suggestions read what the request path recorded: answers,
// timeouts, refusals by the concurrency limit; mocks are left out; the
// patch they propose is a configuration the gateway accepts.
func TestAdvice_FromObservedTraffic(t *testing.T) {
	release := make(chan struct{})
	var slow atomic.Int64
	a := startInstance(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/held":
			<-release
		case "/slow":
			if slow.Add(1)%2 == 0 {
				time.Sleep(150 * time.Millisecond) // past the 50ms deadline
			}
		}
	})
	h := newHarnessWith(t, adviceConfig, map[string]any{"A": a.URL(), "FastExtra": "", "Slow": "50ms"}, func(rt *gateway.Runtime) {
		rt.Stats = observe.NewStats(nil)
	})
	for range 120 {
		if res := h.do("GET", "/fast", nil, nil); res.StatusCode != 200 {
			t.Fatalf("fast: %d", res.StatusCode)
		}
	}
	timedOut := 0
	for range 20 {
		switch res := h.do("GET", "/slow", nil, nil); res.StatusCode {
		case 504:
			timedOut++
		case 200:
		default:
			t.Fatalf("slow: %d", res.StatusCode)
		}
	}
	for range 3 {
		h.do("GET", "/mock", nil, nil)
	}
	// One request held at the backend; the next is refused by the limit.
	done := make(chan struct{})
	go func() {
		defer close(done)
		if res, err := h.srv.Client().Get(h.srv.URL + "/held"); err == nil {
			res.Body.Close()
		}
	}()
	waitFor(t, 5*time.Second, "the held request to reach the backend", func() bool { return a.hits.Load() == 141 })
	for range 5 {
		if res := h.do("GET", "/held", nil, nil); res.StatusCode != 503 {
			t.Fatalf("a request past the limit: %d, want 503", res.StatusCode)
		}
	}
	close(release)
	<-done

	var in advisor.Input
	byName := map[string]advisor.Operation{}
	// The held request's statistics are recorded when the gateway has
	// finished it, which may be after its client has its answer.
	waitFor(t, 5*time.Second, "the held request to be recorded", func() bool {
		in = h.gw.Snapshot().AdvisorInput()
		for _, op := range in.Operations {
			byName[op.Operation] = op
		}
		return byName["held"].Stats.Requests == 6
	})
	if _, ok := byName["mocked"]; ok || len(in.Operations) != 3 {
		t.Fatalf("operations: %+v", in.Operations)
	}
	fast, slowOp, held := byName["fast"].Stats, byName["slow"].Stats, byName["held"].Stats
	if fast.Requests != 120 || fast.Answered != 120 || fast.P99 <= 0 || fast.P99 > time.Second {
		t.Errorf("fast: %+v", fast)
	}
	if timedOut != 10 || slowOp.TimedOut != 10 || slowOp.Answered != 10 {
		t.Errorf("slow: %d timed out; %+v", timedOut, slowOp)
	}
	if held.Requests != 6 || held.Answered != 1 || held.Limited != 5 {
		t.Errorf("held: %+v", held)
	}
	if op := byName["slow"]; op.Request != 50*time.Millisecond || op.ResponseHeader != 30*time.Second || op.BackendPath != "backends[0]" {
		t.Errorf("slow's deadlines: %+v", op)
	}
	if op := byName["fast"]; op.Path != "apis[0].operations[0]" || op.Line != 11 {
		t.Errorf("fast is at %s line %d", op.Path, op.Line)
	}

	rep := advisor.Advise(in, advisor.Options{MinSamples: 20})
	got := map[string]advisor.Suggestion{}
	for _, s := range rep.Suggestions {
		got[s.Kind+" "+s.Operation] = s
	}
	if s := got["timeout fast"]; s.Action != advisor.ActionLower || s.Current != "30s" {
		t.Errorf("fast: %s %s -> %s: %s", s.Action, s.Current, s.Suggested, s.Reason)
	}
	if s := got["timeout slow"]; s.Action != advisor.ActionRaise || s.Suggested != "100ms" {
		t.Errorf("slow: %s -> %s: %s", s.Action, s.Suggested, s.Reason)
	}
	if s := got["timeout held"]; s.Action != advisor.ActionWait {
		t.Errorf("held: %s", s.Action)
	}
	if s := got["concurrency "]; s.Action != advisor.ActionRaise || s.Current != "1" || s.Suggested != "10" {
		t.Errorf("concurrency: %s %s -> %s: %s", s.Action, s.Current, s.Suggested, s.Reason)
	}

	// The patch, put where the suggestion says, is a valid configuration,
	// and the statistics survive the reload.
	patch := got["timeout fast"].Patch
	var indented strings.Builder
	for line := range strings.Lines(patch) {
		indented.WriteString("        " + line)
	}
	h.vars["FastExtra"] = strings.TrimRight(indented.String(), "\n")
	if diags := h.load(adviceConfig); diags != nil {
		t.Fatalf("the suggested patch was refused: %v\n%s", diags, patch)
	}
	if patch != "timeouts:\n  request: 500ms\n  upstream_attempt: 100ms\n" {
		t.Errorf("patch %q: want the 100ms floor per attempt, with room for the default 2 retries", patch)
	}
	in = h.gw.Snapshot().AdvisorInput()
	for _, op := range in.Operations {
		switch op.Operation {
		case "fast":
			if op.Request != 500*time.Millisecond || op.Attempt != 100*time.Millisecond || op.Stats.Requests != 120 {
				t.Errorf("after the patch: request %v attempt %v, %d requests", op.Request, op.Attempt, op.Stats.Requests)
			}
		case "slow":
			// Its deadline did not change: its timeouts still count.
			if op.Stats.TimedOut != 10 {
				t.Errorf("slow's timeouts after the reload: %d", op.Stats.TimedOut)
			}
		}
	}
	// Its deadline raised, the timeouts judged against the old one are
	// forgotten (they would ask for the raise again); its answers stay.
	h.vars["Slow"] = "200ms"
	if diags := h.load(adviceConfig); diags != nil {
		t.Fatal(diags)
	}
	for _, op := range h.gw.Snapshot().AdvisorInput().Operations {
		if op.Operation == "slow" && (op.Stats.TimedOut != 0 || op.Stats.Answered != 10) {
			t.Errorf("slow after its deadline changed: %+v", op.Stats)
		}
	}
}

// A client that gives up while the backend has not answered is counted
// as such (not as an answer, nor as a timeout), with how long it waited,
// and the suggestion's reason says so: a backend that hangs longer than
// its clients wait is seen that way.
func TestAdvice_ClientsThatGiveUpAreCounted(t *testing.T) {
	release := make(chan struct{})
	a := startInstance(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	t.Cleanup(func() { close(release) })
	// Without the concurrency limit of 1: an abandoned request's slot may
	// be released a moment after its client has gone, and the next one
	// would then be refused (503) instead of reaching the backend.
	noLimit := strings.Replace(adviceConfig, "    max_concurrent_requests: 1\n", "", 1)
	h := newHarnessWith(t, noLimit, map[string]any{"A": a.URL(), "FastExtra": "", "Slow": "30s"}, func(rt *gateway.Runtime) {
		rt.Stats = observe.NewStats(nil)
	})
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/slow", nil)
		if res, err := h.srv.Client().Do(req); err == nil {
			res.Body.Close()
			t.Fatalf("the slow request was answered: %d", res.StatusCode)
		}
		cancel()
	}
	var slow advisor.Operation
	waitFor(t, 5*time.Second, "the three abandoned requests to be recorded", func() bool {
		for _, op := range h.gw.Snapshot().AdvisorInput().Operations {
			if op.Operation == "slow" {
				slow = op
			}
		}
		return slow.Stats.Requests == 3
	})
	if st := slow.Stats; st.Abandoned != 3 || st.Answered != 0 || st.TimedOut != 0 || st.AbandonedMax < 100*time.Millisecond || st.AbandonedMax > 5*time.Second {
		t.Fatalf("slow: %+v", st)
	}
	rep := advisor.Advise(advisor.Input{Operations: []advisor.Operation{slow}}, advisor.Options{MinSamples: 1})
	var s advisor.Suggestion
	for _, x := range rep.Suggestions {
		if x.Kind == advisor.KindTimeout {
			s = x
		}
	}
	if !strings.Contains(s.Reason, "3 requests were given up by their clients (499)") || s.Evidence.Abandoned != 3 {
		t.Fatalf("%s: %s; evidence %+v", s.Action, s.Reason, s.Evidence)
	}
}
