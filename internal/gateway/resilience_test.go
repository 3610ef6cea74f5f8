package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/upstream"
	dto "github.com/prometheus/client_model/go"
)

const pairConfig = `
backends:
  - name: pair
    instances: [{url: "{{.A}}"}, {url: "{{.B}}"}]
    health_check: {path: /healthz, interval: {{.Interval}}, timeout: {{.Interval}}, healthy_threshold: 1, unhealthy_threshold: 2}
    outlier_detection: {consecutive_connect_failures: 1, base_ejection: 200ms, max_ejection: 1s}
apis:
  - name: pair
    path_prefix: /pair
    backend: pair
    auth: {anonymous: true}
`

// The acceptance test of issue 3: one of two instances is killed during
// steady load. Failed client requests stay under 0.1% and stop within one
// health interval; when the instance comes back it gets traffic again,
// without a reload.
func TestResilience_KilledInstanceUnderLoad(t *testing.T) {
	// Two failed checks mark an instance down: one slow check on a busy
	// test machine must not take the survivor out of rotation.
	const interval = 200 * time.Millisecond
	a, b := startInstance(t, nil), startInstance(t, nil)
	h := newHarness(t, pairConfig, map[string]any{"A": a.URL(), "B": b.URL(), "Interval": interval.String()})
	l := startLoad(h, "/pair/x", 4)

	waitFor(t, 5*time.Second, "both instances to get traffic", func() bool { return a.hits.Load() > 50 && b.hits.Load() > 50 })
	killed := time.Now()
	b.kill()
	// Keep the load on for a while after the kill, with enough requests
	// for 0.1% to mean something.
	waitFor(t, 20*time.Second, "load after the kill", func() bool {
		return time.Since(killed) > time.Second && l.count() > 2000
	})
	hitsWhileDown := b.hits.Load()
	revived := time.Now()
	b.restart()
	waitFor(t, 5*time.Second, "the restarted instance to get traffic again", func() bool { return b.hits.Load() > hitsWhileDown+20 })
	back := time.Since(revived)
	total, fails := l.finish()

	var lastFail time.Duration
	for _, f := range fails {
		lastFail = max(lastFail, f.at.Sub(killed))
	}
	t.Logf("requests %d, failed %d (%.3f%%), failures stopped %s after the kill (health interval %s), instance back in rotation %s after restart",
		total, len(fails), 100*float64(len(fails))/float64(total), lastFail.Round(time.Millisecond), interval, back.Round(time.Millisecond))
	for i, f := range fails {
		if i < 5 {
			t.Logf("failure at +%s: %s", f.at.Sub(killed).Round(time.Millisecond), f.why)
		}
	}
	if len(fails)*1000 >= total {
		t.Errorf("%d of %d requests failed; want under 0.1%%", len(fails), total)
	}
	if lastFail > interval {
		t.Errorf("requests still failed %s after the kill; want within one health interval (%s)", lastFail, interval)
	}
	if s, _ := instanceStatus(h.pool("pair"), b.ID()); !s.Eligible() {
		t.Errorf("restarted instance %+v, want eligible", s)
	}
}

// deadAndLive returns a harness over two instances: A refuses connections,
// B answers. Outlier ejection is off so that A stays in rotation.
func deadAndLive(t *testing.T) (h *harness, dead, live *instance) {
	dead, live = startInstance(t, nil), startInstance(t, nil)
	dead.kill()
	h = newHarness(t, `
backends:
  - name: pair
    instances: [{url: "{{.A}}"}, {url: "{{.B}}"}]
    outlier_detection: {disabled: true}
apis:
  - name: pair
    path_prefix: /pair
    backend: pair
    auth: {anonymous: true}
`, map[string]any{"A": dead.URL(), "B": live.URL()})
	return h, dead, live
}

func TestResilience_POSTIsNeverRetried(t *testing.T) {
	h, dead, live := deadAndLive(t)
	failed, ok := 0, 0
	for range 6 {
		res := h.do("POST", "/pair/orders", nil, strings.NewReader(`{"n":1}`))
		body := readBody(t, res)
		switch res.StatusCode {
		case 200:
			ok++
		case 502:
			failed++
			if res.Header.Get("Content-Type") != "application/problem+json" || strings.Contains(body, dead.addr) {
				t.Errorf("502 body %s", body)
			}
		default:
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	if failed == 0 || int(live.hits.Load()) != ok {
		t.Fatalf("%d POSTs failed, %d succeeded, live instance saw %d: a POST that met the dead instance must fail, not move to the live one", failed, ok, live.hits.Load())
	}
	for _, line := range h.accessLines(6) {
		if line["method"] == "POST" && line["attempts"] != 1.0 {
			t.Errorf("POST access line with %v attempts: %v", line["attempts"], line)
		}
		if line["status"] == 502.0 && (line["upstream"] != dead.ID() || line["denial"] != "upstream_error") {
			t.Errorf("502 access line %v", line)
		}
	}
}

func TestResilience_GETRetriedOnTheOtherInstanceAfterConnectError(t *testing.T) {
	h, dead, live := deadAndLive(t)
	for range 6 {
		res := h.do("GET", "/pair/orders/1", nil, nil)
		if body := readBody(t, res); res.StatusCode != 200 || body != "from "+live.addr {
			t.Fatalf("GET: %d %s", res.StatusCode, body)
		}
	}
	retried := 0
	for _, line := range h.accessLines(6) {
		if line["upstream"] != live.ID() {
			t.Errorf("a GET was answered by %v", line["upstream"])
		}
		if line["attempts"] == 2.0 {
			retried++
		}
	}
	if retried == 0 {
		t.Fatalf("no GET met the dead instance %s first; the test proves nothing", dead.ID())
	}
	if got := counterValue(t, h, "gatehouse_upstream_retries_total", map[string]string{"backend": "pair", "outcome": "sent"}); got != float64(retried) {
		t.Errorf("retries metric %v, want %d", got, retried)
	}
	if got := counterValue(t, h, "gatehouse_upstream_attempts_total", map[string]string{"backend": "pair", "outcome": "connect_error"}); got != float64(retried) {
		t.Errorf("connect_error attempts metric %v, want %d", got, retried)
	}
}

const reloadConfig = `
backends:
  - name: pair
    instances: [{url: "{{.A}}"}, {url: "{{.B}}"}]
    health_check: {path: /healthz, interval: 100ms, timeout: 100ms, healthy_threshold: 1, unhealthy_threshold: 3}
  - name: flaky
    instances: [{url: "{{.C}}"}]
    circuit_breaker: {failure_ratio: 0.5, window: 10s, minimum_requests: 4, open_duration: 1m, half_open_requests: 1}
    retries: {max_retries: 0}
apis:
  - name: pair
    path_prefix: /pair
    backend: pair
    auth: {anonymous: true}
  - name: flaky
    path_prefix: /flaky
    backend: flaky
    auth: {anonymous: true}
{{.Extra}}
`

func TestResilience_ReloadKeepsHealthAndBreakerState(t *testing.T) {
	a, b := startInstance(t, nil), startInstance(t, nil)
	c := startInstance(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	vars := map[string]any{"A": a.URL(), "B": b.URL(), "C": c.URL(), "Extra": ""}
	h := newHarness(t, reloadConfig, vars)

	// B fails its checks and leaves rotation.
	b.healthy.Store(false)
	pool := h.pool("pair")
	waitFor(t, 5*time.Second, "B to be unhealthy", func() bool { s, _ := instanceStatus(pool, b.ID()); return !s.Healthy })
	bHits := b.hits.Load()
	// flaky's breaker opens after 4 failures.
	for range 4 {
		res := h.do("GET", "/flaky/x", nil, nil)
		if res.StatusCode != 500 {
			t.Fatalf("flaky: %d", res.StatusCode)
		}
	}
	assertOpen := func(when string) {
		t.Helper()
		res := h.do("GET", "/flaky/x", nil, nil)
		var p map[string]any
		_ = json.NewDecoder(res.Body).Decode(&p)
		if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" || !strings.HasSuffix(p["type"].(string), "/unavailable") {
			t.Fatalf("%s: %d Retry-After %q %v, want 503 circuit_open", when, res.StatusCode, res.Header.Get("Retry-After"), p)
		}
		if n := c.hits.Load(); n != 4 {
			t.Fatalf("%s: flaky backend called %d times, want 4 (the open breaker stops calls)", when, n)
		}
	}
	assertOpen("before reload")

	l := startLoad(h, "/pair/x", 2)
	for i := range 3 {
		time.Sleep(50 * time.Millisecond)
		// A different configuration with the same backends: one more API.
		h.vars["Extra"] = fmt.Sprintf("  - {name: extra%d, path_prefix: /extra%d, backend: pair, auth: {anonymous: true}}", i, i)
		if diags := h.load(reloadConfig); diags != nil {
			t.Fatal(diags)
		}
	}
	time.Sleep(100 * time.Millisecond)
	total, fails := l.finish()

	assertOpen("after reloads")
	if st := h.pool("flaky").Breaker().State(); st != upstream.BreakerOpen {
		t.Fatalf("breaker %s after reloads, want open", st)
	}
	if s, _ := instanceStatus(pool, b.ID()); s.Healthy {
		t.Fatal("a reload made the unhealthy instance healthy")
	}
	if n := b.hits.Load(); n != bHits {
		t.Fatalf("the unhealthy instance got %d requests across the reloads", n-bHits)
	}
	if h.pool("pair") != pool {
		t.Fatal("a reload replaced the pool")
	}
	if len(fails) > 0 || total == 0 {
		t.Fatalf("%d of %d requests failed during reloads: %v", len(fails), total, fails[0].why)
	}
	if v := gaugeValue(t, h, "gatehouse_upstream_circuit_state", map[string]string{"backend": "flaky"}); v != 1 {
		t.Errorf("breaker gauge %v, want 1 (open)", v)
	}
	if v := gaugeValue(t, h, "gatehouse_upstream_instance_healthy", map[string]string{"backend": "pair", "instance": b.ID()}); v != 0 {
		t.Errorf("health gauge of B %v, want 0", v)
	}
	if v := gaugeValue(t, h, "gatehouse_upstream_instance_healthy", map[string]string{"backend": "pair", "instance": a.ID()}); v != 1 {
		t.Errorf("health gauge of A %v, want 1", v)
	}
	t.Logf("%d requests during 3 reloads, none failed", total)
}

func TestResilience_NoHealthyInstanceIsAFast503(t *testing.T) {
	a := startInstance(t, nil)
	a.healthy.Store(false)
	h := newHarness(t, `
backends:
  - name: solo
    instances: [{url: "{{.A}}"}]
    health_check: {path: /healthz, interval: 50ms, timeout: 40ms, unhealthy_threshold: 1}
apis:
  - name: solo
    backend: solo
    auth: {anonymous: true}
`, map[string]any{"A": a.URL()})
	waitFor(t, 5*time.Second, "the instance to be unhealthy", func() bool { return len(h.pool("solo").Eligible()) == 0 })
	start := time.Now()
	res := h.do("GET", "/x", nil, nil)
	elapsed := time.Since(start)
	var p map[string]any
	if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 503 || res.Header.Get("Content-Type") != "application/problem+json" || p["status"] != 503.0 {
		t.Fatalf("%d %s %v", res.StatusCode, res.Header.Get("Content-Type"), p)
	}
	if elapsed > 500*time.Millisecond {
		t.Fatalf("503 took %s", elapsed)
	}
	if a.hits.Load() != 0 {
		t.Fatal("the unhealthy instance was called")
	}
	lines := h.accessLines(1)
	if last := lines[len(lines)-1]; last["denial"] != "no_healthy_instance" {
		t.Fatalf("access line %v, want denial no_healthy_instance", last)
	}
	if v := counterValue(t, h, "gatehouse_upstream_errors_total", map[string]string{"backend": "solo", "reason": "no_healthy_instance"}); v != 1 {
		t.Errorf("errors metric %v", v)
	}
	t.Logf("503 no_healthy_instance answered in %s (client round trip on loopback)", elapsed)
}

func TestResilience_OperationTimeoutOverridesAPI(t *testing.T) {
	a := startInstance(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			select {
			case <-r.Context().Done():
			case <-time.After(400 * time.Millisecond):
			}
		}
		w.Write([]byte("done"))
	})
	h := newHarness(t, `
backends:
  - name: be
    instances: [{url: "{{.A}}"}]
apis:
  - name: api
    backend: be
    auth: {anonymous: true}
    timeouts: {request: 5s, upstream_attempt: 5s}
    operations:
      - {method: GET, path: /slow, timeouts: {upstream_attempt: 100ms}}
      - {method: GET, path: /patient/slow}
`, map[string]any{"A": a.URL()})
	start := time.Now()
	res := h.do("GET", "/slow", nil, nil)
	if res.StatusCode != 504 || time.Since(start) > 350*time.Millisecond {
		t.Fatalf("/slow: %d after %s, want 504 after ~100ms", res.StatusCode, time.Since(start))
	}
	if last := h.accessLines(1); last[len(last)-1]["denial"] != "upstream_timeout" {
		t.Fatalf("access line %v", last[len(last)-1])
	}
	if a.hits.Load() != 1 {
		t.Fatalf("a timed-out GET was retried: %d attempts", a.hits.Load())
	}
	res = h.do("GET", "/patient/slow", nil, nil)
	if res.StatusCode != 200 {
		t.Fatalf("/patient/slow with the API's 5s: %d", res.StatusCode)
	}
}

func TestResilience_ConcurrencyLimit(t *testing.T) {
	release := make(chan struct{})
	a := startInstance(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
	})
	h := newHarness(t, `
backends:
  - name: be
    instances: [{url: "{{.A}}"}]
    max_concurrent_requests: 1
apis:
  - name: api
    backend: be
    auth: {anonymous: true}
`, map[string]any{"A": a.URL()})
	done := make(chan int)
	go func() {
		res, err := h.srv.Client().Get(h.srv.URL + "/first")
		if err != nil {
			done <- 0
			return
		}
		res.Body.Close()
		done <- res.StatusCode
	}()
	waitFor(t, 5*time.Second, "the first request to reach the backend", func() bool { return a.hits.Load() == 1 })
	res := h.do("GET", "/second", nil, nil)
	if res.StatusCode != 503 {
		t.Fatalf("second concurrent request: %d, want 503", res.StatusCode)
	}
	close(release)
	if s := <-done; s != 200 {
		t.Fatalf("first request: %d", s)
	}
	if last := h.accessLines(2); last[0]["denial"] != "concurrency_limit" {
		t.Fatalf("access line %v", last[0])
	}
}

// Instances come and go without a reload (as a service registry will do
// it); a removed instance drains.
func TestResilience_InstancesChangeWithoutReload(t *testing.T) {
	release := make(chan struct{})
	a := startInstance(t, nil)
	c := startInstance(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-release
		}
		w.Write([]byte("from c"))
	})
	h := newHarness(t, `
backends:
  - name: be
    instances: [{url: "{{.A}}"}]
apis:
  - name: api
    backend: be
    auth: {anonymous: true}
`, map[string]any{"A": a.URL()})
	pool := h.pool("be")
	if err := pool.SetInstances("registry", []upstream.InstanceSpec{{URL: c.URL()}}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		readBody(t, h.do("GET", "/x", nil, nil))
	}
	if c.hits.Load() != 2 {
		t.Fatalf("registered instance got %d of 4 requests, want 2", c.hits.Load())
	}
	// A request in flight to C when it is deregistered finishes.
	held := make(chan int)
	go func() {
		for {
			res, err := h.srv.Client().Get(h.srv.URL + "/hold")
			if err != nil {
				held <- 0
				return
			}
			body := readBody(t, res)
			if body == "from c" || res.StatusCode != 200 {
				held <- res.StatusCode
				return
			}
		}
	}()
	waitFor(t, 5*time.Second, "a request held by C", func() bool { s, _ := instanceStatus(pool, c.ID()); return s.InFlight == 1 })
	if err := pool.SetInstances("registry", nil); err != nil {
		t.Fatal(err)
	}
	if s, ok := instanceStatus(pool, c.ID()); !ok || !s.Draining {
		t.Fatalf("deregistered instance with a request in flight: %+v, want draining", s)
	}
	before := c.hits.Load()
	for range 4 {
		readBody(t, h.do("GET", "/x", nil, nil))
	}
	if c.hits.Load() != before {
		t.Fatal("a draining instance got new requests")
	}
	close(release)
	if s := <-held; s != 200 {
		t.Fatalf("the request in flight during deregistration ended with %d", s)
	}
	waitFor(t, 5*time.Second, "C to be drained", func() bool { _, ok := instanceStatus(pool, c.ID()); return !ok })
}

func TestResilience_ConsistentHashIsSticky(t *testing.T) {
	var ins [3]*instance
	for i := range ins {
		ins[i] = startInstance(t, nil)
	}
	h := newHarness(t, `
backends:
  - name: be
    instances: [{url: "{{.A}}"}, {url: "{{.B}}"}, {url: "{{.C}}"}]
    load_balancing: {algorithm: consistent_hash, hash_key: "header:X-User"}
apis:
  - name: api
    backend: be
    auth: {anonymous: true}
`, map[string]any{"A": ins[0].URL(), "B": ins[1].URL(), "C": ins[2].URL()})
	owner := map[string]string{}
	for round := range 3 {
		for u := range 20 {
			user := "user-" + string(rune('a'+u))
			body := readBody(t, h.do("GET", "/x", map[string]string{"X-User": user}, nil))
			if prev, ok := owner[user]; ok && prev != body {
				t.Fatalf("round %d: %s moved from %q to %q", round, user, prev, body)
			}
			owner[user] = body
		}
	}
	distinct := map[string]bool{}
	for _, o := range owner {
		distinct[o] = true
	}
	if len(distinct) < 2 {
		t.Fatalf("20 users all on %v", distinct)
	}
}

func metric(t *testing.T, h *harness, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := h.rt.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

func counterValue(t *testing.T, h *harness, name string, labels map[string]string) float64 {
	if m := metric(t, h, name, labels); m != nil {
		return m.GetCounter().GetValue()
	}
	return 0
}

func gaugeValue(t *testing.T, h *harness, name string, labels map[string]string) float64 {
	if m := metric(t, h, name, labels); m != nil {
		return m.GetGauge().GetValue()
	}
	return -1
}
