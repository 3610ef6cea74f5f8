package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// suggestionEnv is a test environment whose suggestions page reads src.
func suggestionEnv(t *testing.T, src Suggestions) *testEnv {
	t.Helper()
	return newTestEnv(t, func(o *Options) { o.Suggestions = src })
}

// fixedSuggestions answers with rep, or err.
type fixedSuggestions struct {
	rep  SuggestionReport
	err  error
	seen *uint64 // when set, the min_samples asked for
}

func (f fixedSuggestions) Suggestions(_ context.Context, minSamples uint64) (SuggestionReport, error) {
	if f.seen != nil {
		*f.seen = minSamples
	}
	return f.rep, f.err
}

// sampleSuggestions has one suggestion of each action, not in the order
// the page lists them.
func sampleSuggestions() fixedSuggestions {
	return fixedSuggestions{rep: SuggestionReport{Window: "24h", MinSamples: 500, Items: []Suggestion{
		{Kind: "timeout", Action: "wait", API: "search", Operation: "query", Backend: "search-svc",
			Setting: "apis[search].operations[query].timeouts.request", Path: "apis[2].operations[0]", Line: 40,
			Current: "5s", Reason: "12 of the 500 backend exchanges needed so far", Requests: 12, PeakRPS: 2, P50ms: 3.2, P99ms: 8, P999ms: 8},
		{Kind: "timeout", Action: "raise", API: "orders", Operation: "getOrder", Backend: "orders-svc",
			Setting: "apis[orders].operations[getOrder].timeouts.request", Path: "apis[0].operations[0]", Line: 12,
			Current: "1s", Suggested: "2s", Reason: "12 of 900 exchanges (1.3%) ran out of time at 1s",
			Patch: "timeouts:\n  request: 2s\n", Requests: 912, TimedOut: 12, PeakRPS: 40, P50ms: 12.5, P99ms: 310, P999ms: 820},
		{Kind: "timeout", Action: "keep", API: "orders", Operation: "listOrders", Backend: "orders-svc",
			Setting: "apis[orders].operations[listOrders].timeouts.request", Path: "apis[0].operations[1]", Line: 20,
			Current: "2s", Reason: "the deadline 2s is within 10× of 300ms", Requests: 4000, PeakRPS: 90, P50ms: 20, P99ms: 80, P999ms: 95},
		{Kind: "concurrency", Action: "add", Backend: "orders-svc",
			Setting: "backends[orders-svc].max_concurrent_requests", Path: "backends[0]", Line: 3,
			Current: "none", Suggested: "20", Reason: "at their busiest seconds the backend's operations took 60 requests/s",
			Patch: "max_concurrent_requests: 20\n", Requests: 4912, TimedOut: 12, PeakRPS: 60, P99ms: 310, P999ms: 820, InFlight: 18.6},
		{Kind: "timeout", Action: "lower", API: "billing", Operation: "*", Backend: "billing-svc",
			Setting: "apis[billing].timeouts.request", Path: "apis[1]",
			Current: "30s", Suggested: "300ms", Reason: "the slowest 0.1% of 2000 answers took up to 90ms",
			Patch: "timeouts:\n  request: 300ms\n", Requests: 2000, PeakRPS: 5, P50ms: 40, P99ms: 85, P999ms: 90},
	}}}
}

func TestSuggestions_RowsShowTheSuggestionsFields(t *testing.T) {
	e := suggestionEnv(t, sampleSuggestions())
	b := e.browser()
	b.signIn("bob") // a viewer
	p := b.get("/ui/suggestions")
	if p.status != http.StatusOK {
		t.Fatalf("suggestions page: %d %s", p.status, p.body)
	}
	for _, want := range []string{
		`<a href="/ui/suggestions" aria-current="page">Suggestions</a>`, // in the navigation
		"Statistics of the last <strong>24h</strong>; an operation needs 500 backend exchanges",
		`<dt>Suggestions</dt><dd>5</dd>`,
		`<dd data-action="raise">1</dd>`, `<dd data-action="add">1</dd>`, `<dd data-action="lower">1</dd>`,
		`<dd data-action="keep">1</dd>`, `<dd data-action="wait">1</dd>`,
		"5 suggestions, changes first",
		`<span class="state state-raise">raise</span>`, `<span class="state state-add">add</span>`,
		`<span class="state state-lower">lower</span>`, `<span class="state state-quiet">keep</span>`, `<span class="state state-quiet">wait</span>`,
		"orders / getOrder<br><code class=\"setting\">apis[orders].operations[getOrder].timeouts.request</code>",
		"<code>1s</code> → <code>2s</code>", "<code>none</code> → <code>20</code>", "<code>30s</code> → <code>300ms</code>",
		"<dt>requests</dt><dd>912</dd>", "<dd>12.5 / 310 / 820 ms</dd>", "<dt>timed out</dt><dd>12</dd>", "<dd>40 req/s</dd>",
		"<dd>– / 310 / 820 ms</dd>", "<dt>in flight</dt><dd>18.6</dd>",
		"12 of 900 exchanges (1.3%) ran out of time at 1s",
		"<pre class=\"code patch\">timeouts:\n  request: 2s\n</pre><span class=\"help\">at <code>apis[0].operations[0]</code>, config line 12</span>",
		"<pre class=\"code patch\">max_concurrent_requests: 20\n</pre><span class=\"help\">at <code>backends[0]</code>, config line 3</span>",
		"backend orders-svc<br>",
		// An API without operations, at an unknown line.
		"billing<br><code class=\"setting\">apis[billing].timeouts.request</code>",
		"<pre class=\"code patch\">timeouts:\n  request: 300ms\n</pre><span class=\"help\">at <code>apis[1]</code></span>",
		"12 of the 500 backend exchanges needed so far",
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "billing / *") {
		t.Error("an API without operations is shown with the operation *")
	}
	if n := strings.Count(p.body, "in flight"); n != 1 {
		t.Errorf("in flight shown %d times, want once (the concurrency suggestion)", n)
	}
	// Changes first, in the order raise, add, lower, keep, wait.
	last := -1
	for _, a := range SuggestionActions {
		i := strings.Index(p.body, `<tr data-action="`+a+`">`)
		if i < last {
			t.Errorf("the %s row is not after the previous action's", a)
		}
		last = i
	}
	if p.header.Get("Cache-Control") != "no-store" || !strings.Contains(p.header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("headers: %v", p.header)
	}
}

func TestSuggestions_ActionFilter(t *testing.T) {
	e := suggestionEnv(t, sampleSuggestions())
	b := e.browser()
	b.signIn("bob")
	p := b.get("/ui/suggestions?action=raise")
	if p.status != http.StatusOK {
		t.Fatalf("filtered: %d", p.status)
	}
	if !strings.Contains(p.body, `<tr data-action="raise">`) || strings.Count(p.body, "<tr data-action=") != 1 {
		t.Error("the filter does not keep only raise")
	}
	if !strings.Contains(p.body, `<a href="/ui/suggestions?action=raise" aria-current="page">Raise</a>`) ||
		strings.Contains(p.body, `<a href="/ui/suggestions" aria-current="page">All</a>`) {
		t.Error("the filter link of the action shown is not the current one")
	}
	if !strings.Contains(p.body, "1 suggestion with the action <code>raise</code>") || !strings.Contains(p.body, `<dt>Suggestions</dt><dd>5</dd>`) ||
		!strings.Contains(p.body, `<dd data-action="keep">1</dd>`) {
		t.Error("the caption is not the filter's, or the counts are not all actions'")
	}
	// An action without suggestions.
	one := fixedSuggestions{rep: SuggestionReport{Window: "24h", MinSamples: 500, Items: sampleSuggestions().rep.Items[:1]}}
	e = suggestionEnv(t, one)
	b = e.browser()
	b.signIn("bob")
	if p := b.get("/ui/suggestions?action=lower"); p.status != http.StatusOK || !strings.Contains(p.body, "No suggestion with this action.") ||
		strings.Contains(p.body, "No operation has upstream traffic yet") {
		t.Errorf("an action without suggestions: %d", p.status)
	}
	for _, action := range []string{"bogus", "<script>alert(1)</script>", "RAISE", "raise ", "paste_your_key_at_evil_example"} {
		p := b.get("/ui/suggestions?action=" + strings.NewReplacer("<", "%3C", ">", "%3E", "/", "%2F", " ", "+").Replace(action))
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "There is no such action. The actions are raise, add, lower, keep, wait.") {
			t.Errorf("action %q: %d, want 400", action, p.status)
		}
		if strings.Contains(p.body, action) || strings.Contains(p.body, "alert(1)") {
			t.Errorf("action %q: the error page repeats it", action)
		}
	}
}

// ?min_samples= reaches the source and stays in the filter's links; a
// value out of range is refused.
func TestSuggestions_MinSamples(t *testing.T) {
	src := sampleSuggestions()
	var seen uint64
	src.seen = &seen
	e := suggestionEnv(t, src)
	b := e.browser()
	b.signIn("bob")
	p := b.get("/ui/suggestions?min_samples=20")
	if p.status != http.StatusOK || seen != 20 {
		t.Fatalf("status %d, source asked for %d", p.status, seen)
	}
	if !strings.Contains(p.body, `href="/ui/suggestions?action=raise&amp;min_samples=20"`) {
		t.Error("the filter links drop min_samples")
	}
	if p := b.get("/ui/suggestions"); p.status != http.StatusOK || seen != 0 {
		t.Errorf("default: %d, asked for %d", p.status, seen)
	}
	for _, v := range []string{"0", "-1", "x", "1000001"} {
		if p := b.get("/ui/suggestions?min_samples=" + v); p.status != http.StatusBadRequest {
			t.Errorf("min_samples=%s: %d, want 400", v, p.status)
		}
	}
}

func TestSuggestions_HTMLInASuggestionIsEscaped(t *testing.T) {
	src := fixedSuggestions{rep: SuggestionReport{Window: "<b>24h</b>", MinSamples: 500, Items: []Suggestion{
		{Kind: "timeout", Action: "raise", API: "<script>alert(1)</script>", Operation: `"><img src=x onerror=alert(2)>`,
			Backend: "<b>svc</b>", Setting: "apis[<script>alert(1)</script>].timeouts.request", Path: `apis[0]"><i>x</i>`, Line: 7,
			Current: "<i>1s</i>", Suggested: "<u>2s</u>", Reason: `<img src=x onerror=alert(3)>`,
			Patch: "timeouts:\n  request: </pre><script>alert(4)</script>\n"},
		{Kind: "<em>concurrency</em>", Action: `"><script>alert(5)</script>`, Backend: "<b>svc</b>", Setting: "x", Current: "none"},
	}}}
	e := suggestionEnv(t, src)
	b := e.browser()
	b.signIn("alice")
	for _, path := range []string{"/ui/suggestions", "/ui/suggestions?action=raise"} {
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("%s: %d", path, p.status)
		}
		for _, bad := range []string{"<script>alert", "<img src=x", "<b>", "<i>", "<u>", "<em>", "</pre><script>"} {
			if strings.Contains(p.body, bad) {
				t.Errorf("%s: %q is not escaped", path, bad)
			}
		}
		for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt; / &#34;&gt;&lt;img src=x onerror=alert(2)&gt;",
			"&lt;img src=x onerror=alert(3)&gt;", "request: &lt;/pre&gt;&lt;script&gt;alert(4)&lt;/script&gt;",
			"<code>&lt;i&gt;1s&lt;/i&gt;</code> → <code>&lt;u&gt;2s&lt;/u&gt;</code>", "&lt;b&gt;24h&lt;/b&gt;"} {
			if !strings.Contains(p.body, want) {
				t.Errorf("%s: the escaped %q is not shown", path, want)
			}
		}
	}
	// An action this page does not know gets the plain badge, and is
	// listed under All.
	if p := b.get("/ui/suggestions"); !strings.Contains(p.body, `<span class="state">&#34;&gt;&lt;script&gt;alert(5)&lt;/script&gt;</span>`) {
		t.Error("the unknown action is not shown, escaped, with the plain badge")
	}
}

func TestSuggestions_Empty(t *testing.T) {
	e := suggestionEnv(t, fixedSuggestions{rep: SuggestionReport{Window: "24h", MinSamples: 500}})
	b := e.browser()
	b.signIn("bob")
	p := b.get("/ui/suggestions")
	if p.status != http.StatusOK || !strings.Contains(p.body, "No operation has upstream traffic yet") {
		t.Fatalf("empty: %d %s", p.status, p.body)
	}
	if !strings.Contains(p.body, `<dt>Suggestions</dt><dd>0</dd>`) || !strings.Contains(p.body, "0 suggestions, changes first") {
		t.Error("the empty counts are not shown")
	}
	if p := b.get("/ui/suggestions?action=wait"); p.status != http.StatusOK || !strings.Contains(p.body, "No operation has upstream traffic yet") {
		t.Errorf("empty, filtered: %d", p.status)
	}
}

func TestSuggestions_NotConnected(t *testing.T) {
	for name, src := range map[string]Suggestions{"nil source": nil, "no snapshot": fixedSuggestions{err: ErrNotConnected}} {
		t.Run(name, func(t *testing.T) {
			e := suggestionEnv(t, src)
			b := e.browser()
			b.signIn("bob")
			p := b.get("/ui/suggestions")
			if p.status != http.StatusOK || !strings.Contains(p.body, "The suggestions are not connected to this dashboard.") {
				t.Fatalf("%d %s", p.status, p.body)
			}
			if strings.Contains(p.body, `id="suggestions"`) || strings.Contains(p.body, `id="suggestion-counts"`) {
				t.Error("a table or counts are shown")
			}
			if p := b.get("/ui/suggestions?action=bogus"); p.status != http.StatusBadRequest {
				t.Errorf("an unknown action: %d", p.status)
			}
		})
	}
}

func TestSuggestions_SourceFailureIsFriendly(t *testing.T) {
	e := suggestionEnv(t, fixedSuggestions{err: errors.New("stats at postgres://admin:hunter2@db failed")})
	b := e.browser()
	b.signIn("bob")
	p := b.get("/ui/suggestions")
	if p.status != http.StatusBadGateway || strings.Contains(p.body, "hunter2") || !strings.Contains(p.body, "The suggestions could not be read.") {
		t.Fatalf("%d %s", p.status, p.body)
	}
	if !strings.Contains(e.logs.String(), "hunter2@db") {
		t.Error("the cause did not reach the log")
	}
}

func TestSuggestions_SignedOutIsSentToSignIn(t *testing.T) {
	e := suggestionEnv(t, sampleSuggestions())
	if p := e.browser().get("/ui/suggestions?action=raise"); p.status != http.StatusFound ||
		p.location != "/ui/login?return=%2Fui%2Fsuggestions%3Faction%3Draise" {
		t.Fatalf("signed out: %d to %q", p.status, p.location)
	}
}

// The overview says how many settings to change, with a link; it says
// nothing when there is no suggestion at all.
func TestSuggestions_OverviewCountsTheChanges(t *testing.T) {
	e := suggestionEnv(t, sampleSuggestions())
	b := e.browser()
	b.signIn("bob")
	p := b.get("/ui/")
	if p.status != http.StatusOK || !strings.Contains(p.body, `<dd><a href="/ui/suggestions">3</a></dd>`) {
		t.Fatalf("overview: %d, no count of the 3 changes (raise, add, lower):\n%s", p.status, p.body)
	}
	e = suggestionEnv(t, fixedSuggestions{rep: SuggestionReport{Window: "24h", MinSamples: 500}})
	b = e.browser()
	b.signIn("bob")
	if p := b.get("/ui/"); strings.Contains(p.body, "suggestion-summary") {
		t.Error("the count is shown without any suggestion")
	}
}
