package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/advisor"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
)

func TestSuggest_PrintsWhatToChange(t *testing.T) {
	fast := advisor.Operation{
		API: "orders", Operation: "getOrder", Backend: "orders", Path: "apis[0].operations[0]", Line: 14,
		Request: 30 * time.Second, Attempt: 30 * time.Second, ResponseHeader: 30 * time.Second,
		Stats: observe.UpstreamSummary{Requests: 900, Answered: 900, PeakRPS: 40,
			P50: 8 * time.Millisecond, P99: 40 * time.Millisecond, P999: 90 * time.Millisecond, Max: 120 * time.Millisecond},
	}
	quiet := fast
	quiet.Operation, quiet.Stats = "cancelOrder", observe.UpstreamSummary{Requests: 12, Answered: 12}
	rep := advisor.Advise(advisor.Input{Operations: []advisor.Operation{fast, quiet},
		Backends: []advisor.Backend{{Name: "orders", Path: "backends[0]", Line: 3}}}, advisor.Options{MinSamples: 200})
	var gotQuery, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/suggestions" {
			http.NotFound(w, r)
			return
		}
		gotQuery, gotAuth = r.URL.RawQuery, r.Header.Get("Authorization")
		json.NewEncoder(w).Encode(rep)
	}))
	t.Cleanup(srv.Close)
	t.Setenv(envAdminToken, "viewer-token")

	run := func(args ...string) string {
		t.Helper()
		var out, errs bytes.Buffer
		if code := Main(context.Background(), append([]string{"suggest", "--admin-url", srv.URL}, args...), nil, &out, &errs); code != 0 {
			t.Fatalf("exit %d: %s", code, errs.String())
		}
		return out.String()
	}
	out := run("--min-samples", "200")
	if gotQuery != "min_samples=200" || gotAuth != "Bearer viewer-token" {
		t.Errorf("query %q auth %q", gotQuery, gotAuth)
	}
	for _, want := range []string{
		"From the last 24h of traffic (an operation needs 200 upstream exchanges).",
		"LOWER apis[orders].operations[getOrder].timeouts.request  30s -> 300ms  (config line 14)",
		"requests 900, to the response headers: p50 8ms p99 40ms p99.9 90ms max 120ms, busiest second 40",
		"  at apis[0].operations[0]:\n    timeouts:\n      request: 300ms\n",
		"ADD   backends[orders].max_concurrent_requests  none -> 10  (config line 3)",
		"1 more: 0 that fit (keep), 1 waiting for traffic (wait); --all lists them.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "cancelOrder") {
		t.Errorf("a wait is listed without --all:\n%s", out)
	}
	if out := run("--all"); !strings.Contains(out, "WAIT  apis[orders].operations[cancelOrder].timeouts.request  30s") || gotQuery != "" {
		t.Errorf("--all (query %q):\n%s", gotQuery, out)
	}
	var back advisor.Report
	if err := json.Unmarshal([]byte(run("--json")), &back); err != nil || len(back.Suggestions) != 3 {
		t.Errorf("--json: %v, %+v", err, back)
	}
}

// A name from the configuration cannot drive the terminal.
func TestSuggest_ControlCharactersArePrinted(t *testing.T) {
	var b bytes.Buffer
	sg := advisor.Suggestion{Kind: "timeout", Action: "lower", Setting: "apis[x\x1b]0;pwned\a\x1b[2J].timeouts.request",
		Current: "30s", Suggested: "1s", Reason: "r\rLOWER fake", Path: "apis[0]", Patch: "timeouts:\n  request: 1s\x1b[0m\n"}
	printSuggestions(&b, &advisor.Report{Window: "24h", MinSamples: 1, Suggestions: []advisor.Suggestion{sg}}, false)
	out := b.String()
	if strings.ContainsAny(out, "\x1b\a\r") {
		t.Fatalf("control characters in %q", out)
	}
	if !strings.Contains(out, "apis[x?]0;pwned??[2J].timeouts.request") {
		t.Errorf("output %q", out)
	}
}
