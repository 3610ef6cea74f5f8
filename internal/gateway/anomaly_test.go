package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/anomaly"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
)

const anomalyConfig = baseConfig + `
  - name: vault
    path_prefix: /vault
    backend: be
    sensitive: true
    auth: {credentials: [jwt]}
anomalies:
  enabled: true
  auth_failures: {threshold: 5, action: throttle}
  enumeration: {threshold: 10}
  rate_spike: {disabled: true}
  first_access: {learning: 0s}
  throttle: {rate: 1, period: 1m, duration: 10m}
`

func anomalyHarness(t *testing.T) (*harness, *anomaly.Detector) {
	var d *anomaly.Detector
	h := newHarnessWith(t, anomalyConfig, map[string]any{"Trusted": "[127.0.0.1/32]"}, func(rt *gateway.Runtime) {
		d = anomaly.New(anomaly.Options{Logger: rt.Logger})
		d.Start()
		t.Cleanup(d.Close)
		rt.Anomalies = d
	})
	return h, d
}

// clearOfWindowEdge waits, when a one-minute window of the detector ends
// within 3 s, until the next one has begun, so that a test's burst falls
// in one window.
func clearOfWindowEdge() {
	now := time.Now()
	if left := now.Truncate(time.Minute).Add(time.Minute).Sub(now); left < 3*time.Second {
		time.Sleep(left + 50*time.Millisecond)
	}
}

// flushed waits for the access lines of n requests (the detector is told
// of a request just before its line is written, which may be after the
// client has its response), then for the detector's queue.
func flushed(t *testing.T, h *harness, n int, d *anomaly.Detector, kind anomaly.Kind) []anomaly.Event {
	t.Helper()
	h.waitAccess(n)
	if !d.Flush(5 * time.Second) {
		t.Fatal("the detector did not drain its queue")
	}
	return d.Recent(100, kind)
}

func TestAnomalies_AuthFailuresThrottleTheSourceBeforeAuthentication(t *testing.T) {
	h, d := anomalyHarness(t)
	clearOfWindowEdge()
	from := func(ip string, hdr map[string]string) map[string]string {
		out := map[string]string{"X-Forwarded-For": ip}
		for k, v := range hdr {
			out[k] = v
		}
		return out
	}
	for i := range 5 {
		res := h.do("GET", "/orders/1", from("192.0.2.10", map[string]string{"X-API-Key": fmt.Sprintf("ghk_guess-%d", i)}), nil)
		readBody(t, res)
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, res.StatusCode)
		}
	}
	before := h.backend.count()
	// Throttled at 1 a minute: the first request passes (with the right
	// key it is served), the next is refused before its key is checked.
	res := h.do("GET", "/orders/1", from("192.0.2.10", map[string]string{"X-API-Key": testAPIKey}), nil)
	readBody(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("the throttle's allowance: %d", res.StatusCode)
	}
	res = h.do("GET", "/orders/1", from("192.0.2.10", map[string]string{"X-API-Key": testAPIKey}), nil)
	body := readBody(t, res)
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "/problems/throttled") {
		t.Fatalf("past the allowance: %d %s", res.StatusCode, body)
	}
	if ra := res.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After = %q", ra)
	}
	if got := h.backend.count(); got != before+1 {
		t.Fatalf("the backend saw %d requests after the throttle began, want 1", got-before)
	}
	// Another address is not held back.
	res = h.do("GET", "/orders/1", from("192.0.2.11", map[string]string{"X-API-Key": testAPIKey}), nil)
	readBody(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("another client: %d", res.StatusCode)
	}
	ev := flushed(t, h, 8, d, anomaly.KindAuthFailures)
	if len(ev) != 1 || ev[0].Caller != "ip:192.0.2.10" || ev[0].Action != anomaly.ActionThrottled || ev[0].Count != 5 {
		t.Fatalf("events = %+v", ev)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, `"denial":"anomaly_throttled"`) {
		t.Fatalf("no access line with the throttle's denial:\n%s", logs)
	}
}

func TestAnomalies_EnumerationAndFirstAccess(t *testing.T) {
	h, d := anomalyHarness(t)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/orders/9") {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("ok"))
	}
	tok := h.token(nil)
	clearOfWindowEdge()
	// One missing order asked for again and again: not an enumeration.
	for range 15 {
		readBody(t, h.do("GET", "/orders/900", bearer(tok), nil))
	}
	if ev := flushed(t, h, 15, d, anomaly.KindEnumeration); len(ev) != 0 {
		t.Fatalf("one path flagged: %+v", ev)
	}
	for i := range 15 {
		readBody(t, h.do("GET", fmt.Sprintf("/orders/9%02d", i+1), bearer(tok), nil))
	}
	ev := flushed(t, h, 30, d, anomaly.KindEnumeration)
	if len(ev) != 1 || ev[0].Caller != "jwt:idp:alice" || ev[0].API != "orders" || ev[0].Operation != "get" {
		t.Fatalf("enumeration events = %+v", ev)
	}
	// The vault API is sensitive: alice's first call is flagged, her
	// second is not; bob's first is.
	for range 2 {
		readBody(t, h.do("GET", "/vault/secret", bearer(tok), nil))
	}
	readBody(t, h.do("GET", "/vault/secret", bearer(h.token(map[string]any{"sub": "bob"})), nil))
	// Orders are not sensitive: no first access there.
	ev = flushed(t, h, 33, d, anomaly.KindFirstAccess)
	if len(ev) != 2 || ev[1].Caller != "jwt:idp:alice" || ev[0].Caller != "jwt:idp:bob" || ev[0].API != "vault" {
		t.Fatalf("first-access events = %+v", ev)
	}
	if !strings.Contains(h.logs.String(), `"msg":"anomaly"`) {
		t.Fatalf("no anomaly log line:\n%s", h.logs.String())
	}
}

func TestAnomalies_OffByDefault(t *testing.T) {
	d := anomaly.New(anomaly.Options{})
	d.Start()
	t.Cleanup(d.Close)
	h := newHarnessWith(t, baseConfig, nil, func(rt *gateway.Runtime) { rt.Anomalies = d })
	for i := range 10 {
		readBody(t, h.do("GET", "/orders/1", map[string]string{"X-API-Key": fmt.Sprintf("wrong-%d", i)}, nil))
	}
	if d.Callers() != 0 || h.gw.Snapshot().AnomaliesEnabled() {
		t.Fatalf("detection ran without anomalies.enabled: %d callers", d.Callers())
	}
}

// Only the gateway's own refusals are auth failures: a backend that
// answers 403 for its own reasons ("not your order") does not get its
// callers flagged or throttled, while the gateway's authorization
// refusals (403 forbidden:…) count.
func TestAnomalies_ABackendsOwn403IsNotAnAuthFailure(t *testing.T) {
	h, d := anomalyHarness(t)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }
	clearOfWindowEdge()
	hdr := map[string]string{"X-Forwarded-For": "192.0.2.20", "X-API-Key": testAPIKey}
	for i := range 8 {
		res := h.do("GET", "/orders/1", hdr, nil)
		readBody(t, res)
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("request %d: %d, want the backend's 403", i, res.StatusCode)
		}
	}
	if ev := flushed(t, h, 8, d, anomaly.KindAuthFailures); len(ev) != 0 {
		t.Fatalf("the backend's 403s were flagged: %+v", ev)
	}
	// The gateway's own refusal: a token without the group delete needs.
	tok := bearer(h.token(nil))
	tok["X-Forwarded-For"] = "192.0.2.21"
	for i := range 5 {
		res := h.do("DELETE", "/orders/1", tok, nil)
		body := readBody(t, res)
		if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "forbidden") {
			t.Fatalf("refusal %d: %d %s", i, res.StatusCode, body)
		}
	}
	ev := flushed(t, h, 13, d, anomaly.KindAuthFailures)
	if len(ev) != 1 || ev[0].Caller != "jwt:idp:alice" || ev[0].Count != 5 {
		t.Fatalf("events = %+v", ev)
	}
}
