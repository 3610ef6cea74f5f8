package gateway_test

import (
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
      - {name: slow, method: GET, path: /slow, timeouts: {request: 50ms}}
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
	h := newHarnessWith(t, adviceConfig, map[string]any{"A": a.URL(), "FastExtra": ""}, func(rt *gateway.Runtime) {
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
	if res := h.do("GET", "/held", nil, nil); res.StatusCode != 503 {
		t.Fatalf("second held request: %d, want 503", res.StatusCode)
	}
	close(release)
	<-done

	in := h.gw.Snapshot().AdvisorInput()
	byName := map[string]advisor.Operation{}
	for _, op := range in.Operations {
		byName[op.Operation] = op
	}
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
	if held.Requests != 2 || held.Answered != 1 || held.Limited != 1 {
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
	in = h.gw.Snapshot().AdvisorInput()
	for _, op := range in.Operations {
		if op.Operation == "fast" {
			if op.Request.String() != got["timeout fast"].Suggested || op.Stats.Requests != 120 {
				t.Errorf("after the patch: request %v, %d requests", op.Request, op.Stats.Requests)
			}
		}
	}
}
