package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// anomalyEnv is a test environment whose anomalies page reads src.
func anomalyEnv(t *testing.T, src Anomalies) *testEnv {
	t.Helper()
	return newTestEnv(t, func(o *Options) { o.Anomalies = src })
}

var anomalyT0 = time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC)

func sampleAnomalies() *MemoryAnomalies {
	m := NewMemoryAnomalies(0)
	m.Add(AnomalyEvent{Time: anomalyT0, Kind: "first_access", Caller: "jwt:corp:alice", ClientIP: "192.0.2.7",
		API: "orders", Operation: "deleteOrder", Count: 1, Action: "logged",
		Detail: "first request of this caller to the sensitive operation deleteOrder of orders"})
	m.Add(AnomalyEvent{Time: anomalyT0.Add(time.Minute), Kind: "auth_failures", Caller: "ip:198.51.100.9", ClientIP: "198.51.100.9",
		Count: 20, Action: "throttled", Until: anomalyT0.Add(6 * time.Minute),
		Detail: "20 requests refused with 401 or 403 within 1m0s"})
	m.Add(AnomalyEvent{Time: anomalyT0.Add(2 * time.Minute), Kind: "rate_spike", Caller: "key:bob", ClientIP: "203.0.113.4",
		API: "orders", Operation: "getOrder", Count: 900, Baseline: 12.5, Action: "logged",
		Detail: "900 requests in 1m0s against a baseline of 12.5 (more than 10 times it)"})
	m.SetStats(42, 3)
	return m
}

func TestAnomalies_RowsShowTheEventsFields(t *testing.T) {
	e := anomalyEnv(t, sampleAnomalies())
	b := e.browser()
	b.signIn("bob") // a viewer
	p := b.get("/ui/anomalies")
	if p.status != http.StatusOK {
		t.Fatalf("anomalies page: %d %s", p.status, p.body)
	}
	for _, want := range []string{
		`<a href="/ui/anomalies" aria-current="page">Anomalies</a>`, // in the navigation
		`<dt>Flagged since start</dt><dd>3</dd>`,
		`<dd data-kind="rate_spike">1</dd>`, `<dd data-kind="enumeration">0</dd>`,
		`<dt>Callers followed</dt><dd>42</dd>`, `<dt>Dropped (queue full)</dt><dd>3</dd>`,
		"3 events, newest first",
		"2026-03-01 08:30:00 UTC", "<code>first_access</code>", "<code>jwt:corp:alice</code>", "<code>192.0.2.7</code>",
		"orders / deleteOrder", "first request of this caller to the sensitive operation deleteOrder of orders",
		"<code>ip:198.51.100.9</code>", `<span class="state state-throttled">throttled</span>`,
		`until <time datetime="2026-03-01T08:36:00Z">2026-03-01 08:36:00 UTC</time>`,
		"<code>key:bob</code>", "orders / getOrder", "against a baseline of 12.5",
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "anomalies-off") {
		t.Error("detection is on, the page says it is off")
	}
	// Newest first.
	spike, auth, first := strings.Index(p.body, "key:bob"), strings.Index(p.body, "ip:198.51.100.9"), strings.Index(p.body, "jwt:corp:alice")
	if !(spike < auth && auth < first) {
		t.Errorf("rows not newest first: rate_spike at %d, auth_failures at %d, first_access at %d", spike, auth, first)
	}
}

func TestAnomalies_HTMLInAnEventIsEscaped(t *testing.T) {
	m := NewMemoryAnomalies(0)
	m.Add(AnomalyEvent{Time: anomalyT0, Kind: "auth_failures", Caller: "jwt:corp:<script>alert(1)</script>",
		ClientIP: `"><img src=x onerror=alert(2)>`, API: "<b>api</b>", Operation: "<i>op</i>",
		Detail: `<img src=x onerror=alert(3)>`, Action: "logged"})
	e := anomalyEnv(t, m)
	b := e.browser()
	b.signIn("alice")
	for _, path := range []string{"/ui/anomalies", "/ui/anomalies?kind=auth_failures"} {
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("%s: %d", path, p.status)
		}
		for _, bad := range []string{"<script>alert(1)", "<img src=x", "<b>api</b>", "<i>op</i>"} {
			if strings.Contains(p.body, bad) {
				t.Errorf("%s: %q is not escaped", path, bad)
			}
		}
		if !strings.Contains(p.body, "jwt:corp:&lt;script&gt;alert(1)&lt;/script&gt;") ||
			!strings.Contains(p.body, "&lt;img src=x onerror=alert(3)&gt;") {
			t.Errorf("%s: the escaped caller or detail is not shown", path)
		}
	}
}

func TestAnomalies_KindFilter(t *testing.T) {
	e := anomalyEnv(t, sampleAnomalies())
	b := e.browser()
	b.signIn("bob")
	p := b.get("/ui/anomalies?kind=auth_failures")
	if p.status != http.StatusOK {
		t.Fatalf("filtered: %d", p.status)
	}
	if !strings.Contains(p.body, "ip:198.51.100.9") || strings.Contains(p.body, "key:bob") || strings.Contains(p.body, "jwt:corp:alice") {
		t.Error("the filter does not keep only auth_failures")
	}
	if !strings.Contains(p.body, `<a href="/ui/anomalies?kind=auth_failures" aria-current="page">`) {
		t.Error("the filter link of the kind shown is not current")
	}
	if !strings.Contains(p.body, `<dt>Flagged since start</dt><dd>3</dd>`) {
		t.Error("the counts are not all kinds' when filtered")
	}
	if p := b.get("/ui/anomalies?kind=enumeration"); p.status != http.StatusOK || !strings.Contains(p.body, "No anomaly of this kind flagged") {
		t.Errorf("a kind without events: %d", p.status)
	}
	for _, kind := range []string{"bogus", "<script>alert(1)</script>", "paste_your_key_at_evil_example", "RATE_SPIKE"} {
		p := b.get("/ui/anomalies?kind=" + strings.NewReplacer("<", "%3C", ">", "%3E", "/", "%2F").Replace(kind))
		if p.status != http.StatusBadRequest || !strings.Contains(p.body, "There is no such kind of anomaly") {
			t.Errorf("kind %q: %d, want 400", kind, p.status)
		}
		if strings.Contains(p.body, kind) || strings.Contains(p.body, "alert(1)") {
			t.Errorf("kind %q: the error page repeats it", kind)
		}
	}
}

// A kind the source counts but this page does not know (a newer
// detector) is listed and can be chosen.
func TestAnomalies_KindCountedBySourceIsAccepted(t *testing.T) {
	m := sampleAnomalies()
	m.Add(AnomalyEvent{Time: anomalyT0.Add(3 * time.Minute), Kind: "geo_jump", Caller: "key:carol", Action: "logged"})
	e := anomalyEnv(t, m)
	b := e.browser()
	b.signIn("bob")
	p := b.get("/ui/anomalies?kind=geo_jump")
	if p.status != http.StatusOK || !strings.Contains(p.body, "key:carol") || !strings.Contains(p.body, ">Geo jump</a>") {
		t.Fatalf("a kind the source counts: %d", p.status)
	}
}

func TestAnomalies_EmptyAndOff(t *testing.T) {
	m := NewMemoryAnomalies(0)
	e := anomalyEnv(t, m)
	b := e.browser()
	b.signIn("bob")
	p := b.get("/ui/anomalies")
	if p.status != http.StatusOK || !strings.Contains(p.body, "No anomalies flagged since the gateway started.") {
		t.Fatalf("empty: %d %s", p.status, p.body)
	}
	if strings.Contains(p.body, "anomalies-off") || strings.Contains(p.body, "Dropped") {
		t.Error("an empty page with detection on says it is off, or shows drops")
	}
	m.SetEnabled(false)
	if p := b.get("/ui/anomalies"); !strings.Contains(p.body, `id="anomalies-off"`) || !strings.Contains(p.body, "No anomalies flagged") {
		t.Error("detection off is not said")
	}
}

type notConnectedAnomalies struct{}

func (notConnectedAnomalies) Anomalies(context.Context, string, int) (AnomalyReport, error) {
	return AnomalyReport{}, ErrNotConnected
}

type failingAnomalies struct{}

func (failingAnomalies) Anomalies(context.Context, string, int) (AnomalyReport, error) {
	return AnomalyReport{}, errors.New("detector at postgres://admin:hunter2@db failed")
}

func TestAnomalies_NotConnected(t *testing.T) {
	for name, src := range map[string]Anomalies{"nil source": nil, "no detector": notConnectedAnomalies{}} {
		t.Run(name, func(t *testing.T) {
			e := anomalyEnv(t, src)
			b := e.browser()
			b.signIn("bob")
			p := b.get("/ui/anomalies")
			if p.status != http.StatusOK || !strings.Contains(p.body, "Anomaly detection is not connected to this dashboard.") {
				t.Fatalf("%d %s", p.status, p.body)
			}
			if strings.Contains(p.body, `id="anomalies"`) {
				t.Error("a table is shown")
			}
			if p := b.get("/ui/anomalies?kind=bogus"); p.status != http.StatusBadRequest {
				t.Errorf("an unknown kind: %d", p.status)
			}
			if p := b.get("/ui/"); p.status != http.StatusOK || strings.Contains(p.body, "anomaly-summary") {
				t.Errorf("overview: %d, or it shows anomalies", p.status)
			}
		})
	}
}

func TestAnomalies_SourceFailureIsFriendly(t *testing.T) {
	e := anomalyEnv(t, failingAnomalies{})
	b := e.browser()
	b.signIn("bob")
	p := b.get("/ui/anomalies")
	if p.status != http.StatusBadGateway || strings.Contains(p.body, "hunter2") || !strings.Contains(p.body, "could not be read") {
		t.Fatalf("%d %s", p.status, p.body)
	}
	if !strings.Contains(e.logs.String(), "hunter2@db") {
		t.Error("the cause did not reach the log")
	}
	// The overview is about traffic: it still shows.
	if p := b.get("/ui/"); p.status != http.StatusOK || strings.Contains(p.body, "anomaly-summary") {
		t.Errorf("overview with a failing source: %d", p.status)
	}
}

func TestAnomalies_ViewerSeesThePageSignedOutDoesNot(t *testing.T) {
	e := anomalyEnv(t, sampleAnomalies())
	if p := e.browser().get("/ui/anomalies?kind=rate_spike"); p.status != http.StatusFound ||
		p.location != "/ui/login?return=%2Fui%2Fanomalies%3Fkind%3Drate_spike" {
		t.Fatalf("signed out: %d to %q", p.status, p.location)
	}
	b := e.browser()
	b.signIn("bob")
	p := b.get("/ui/anomalies")
	if p.status != http.StatusOK || !strings.Contains(p.body, `<span class="badge">viewer</span>`) || !strings.Contains(p.body, "key:bob") {
		t.Fatalf("viewer: %d", p.status)
	}
	if p.header.Get("Cache-Control") != "no-store" || !strings.Contains(p.header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("headers: %v", p.header)
	}
}

func TestAnomalies_ListsTheLatest200(t *testing.T) {
	m := NewMemoryAnomalies(0)
	for i := range 250 {
		m.Add(AnomalyEvent{Time: anomalyT0.Add(time.Duration(i) * time.Second), Kind: "rate_spike", Caller: fmt.Sprintf("key:c%03d", i), Action: "logged"})
	}
	e := anomalyEnv(t, m)
	b := e.browser()
	b.signIn("bob")
	p := b.get("/ui/anomalies")
	if n := strings.Count(p.body, "<code>key:c"); n != 200 {
		t.Errorf("%d rows, want 200", n)
	}
	if !strings.Contains(p.body, "The latest 200 events") || !strings.Contains(p.body, "key:c249") || strings.Contains(p.body, "key:c049") {
		t.Error("not the latest 200")
	}
	if !strings.Contains(p.body, `<dt>Flagged since start</dt><dd>250</dd>`) {
		t.Error("the count is not since start")
	}
}

func TestAnomalies_OverviewShowsTheTotal(t *testing.T) {
	m := sampleAnomalies()
	e := anomalyEnv(t, m)
	b := e.browser()
	b.signIn("bob")
	p := b.get("/ui/")
	if !strings.Contains(p.body, `id="anomaly-summary"`) || !strings.Contains(p.body, `<a href="/ui/anomalies">3</a>`) {
		t.Fatalf("overview lacks the anomaly total:\n%s", p.body)
	}
	// Detection off and nothing flagged: nothing to say.
	e = anomalyEnv(t, NewMemoryAnomalies(0))
	e.dash.o.Anomalies.(*MemoryAnomalies).SetEnabled(false)
	b = e.browser()
	b.signIn("bob")
	if p := b.get("/ui/"); strings.Contains(p.body, "anomaly-summary") {
		t.Error("the overview shows anomalies with detection off and none flagged")
	}
}
