package upstream

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeBackend is a base RoundTripper that answers per host, records the
// hosts it was called for, and never touches the network.
type fakeBackend struct {
	mu     sync.Mutex
	calls  []string
	bodies []string
	answer func(req *http.Request) (*http.Response, error)
}

func (f *fakeBackend) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	answer := f.answer
	f.mu.Unlock()
	var res *http.Response
	var err error
	if answer != nil {
		// An answer that is an error comes before any body byte is read,
		// like a failed dial.
		if res, err = answer(req); err != nil {
			f.mu.Lock()
			f.calls = append(f.calls, req.URL.Host)
			f.bodies = append(f.bodies, "")
			f.mu.Unlock()
			return nil, err
		}
	}
	var body string
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = string(b)
	}
	f.mu.Lock()
	f.calls = append(f.calls, req.URL.Host)
	f.bodies = append(f.bodies, body)
	f.mu.Unlock()
	if res == nil {
		res = respond(req, 200)
	}
	return res, nil
}

func (f *fakeBackend) hosts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func respond(req *http.Request, status int) *http.Response {
	return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: req}
}

func newTestPool(t *testing.T, cfg *Config, urls ...string) *Pool {
	t.Helper()
	p := NewPool("be", nil, nil)
	t.Cleanup(p.Close)
	if cfg != nil {
		p.Configure(cfg)
	}
	var specs []InstanceSpec
	for _, u := range urls {
		specs = append(specs, InstanceSpec{URL: u})
	}
	if err := p.SetInstances("static", specs); err != nil {
		t.Fatal(err)
	}
	return p
}

func eligibleIDs(p *Pool) []string {
	var ids []string
	for _, e := range p.Eligible() {
		ids = append(ids, e.ID)
	}
	return ids
}

func status(t *testing.T, p *Pool, id string) InstanceStatus {
	t.Helper()
	for _, s := range p.Instances() {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no instance %s in %+v", id, p.Instances())
	return InstanceStatus{}
}

const (
	instA = "http://10.0.0.1:80"
	instB = "http://10.0.0.2:80"
	instC = "http://10.0.0.3:80"
)

func TestPool_SetInstances_SourcesCoexistWithoutReload(t *testing.T) {
	p := newTestPool(t, nil, "http://10.0.0.1", "http://10.0.0.2:80")
	if got := eligibleIDs(p); !slices.Equal(got, []string{instA, instB}) {
		t.Fatalf("static instances %v", got)
	}
	// A registry adds one instance and announces a static one too.
	if err := p.SetInstances("registry", []InstanceSpec{{URL: instC, Weight: 3}, {URL: instB}}); err != nil {
		t.Fatal(err)
	}
	if got := eligibleIDs(p); !slices.Equal(got, []string{instA, instB, instC}) {
		t.Fatalf("after registration %v", got)
	}
	if s := status(t, p, instB); !slices.Equal(s.Sources, []string{"registry", "static"}) {
		t.Fatalf("sources of B %v", s.Sources)
	}
	if w := status(t, p, instC).Weight; w != 3 {
		t.Fatalf("weight of C %d, want 3", w)
	}
	// The registry deregisters everything: B stays (still static), C goes.
	if err := p.SetInstances("registry", nil); err != nil {
		t.Fatal(err)
	}
	if got := eligibleIDs(p); !slices.Equal(got, []string{instA, instB}) {
		t.Fatalf("after deregistration %v", got)
	}
	if len(p.Instances()) != 2 {
		t.Fatalf("a removed idle instance lingers: %+v", p.Instances())
	}
	if err := p.SetInstances("registry", []InstanceSpec{{URL: "ftp://x"}}); err == nil {
		t.Fatal("an invalid instance URL was accepted")
	}
}

func TestPool_RemovedInstanceDrains(t *testing.T) {
	p := newTestPool(t, nil, instA, instB)
	a := p.Eligible()[0]
	a.inFlight.Add(1) // a request in flight to A
	if err := p.SetInstances("static", []InstanceSpec{{URL: instB}}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if e := p.Pick(0, false, nil); e.ID != instB {
			t.Fatalf("new request sent to the removed instance %s", e.ID)
		}
	}
	if s := status(t, p, instA); !s.Draining || s.InFlight != 1 || s.Eligible() {
		t.Fatalf("removed instance with a request in flight: %+v, want draining", s)
	}
	p.release(a) // the request finishes
	for _, s := range p.Instances() {
		if s.ID == instA {
			t.Fatalf("drained instance still listed: %+v", s)
		}
	}
}

func TestPool_ReAddedInstanceKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(t, &Config{Outlier: &OutlierConfig{ConsecutiveConnect: 1, BaseEjection: time.Minute, MaxEjection: time.Hour, MaxEjectedPercent: 50}}, instA, instB)
		a := p.Eligible()[0]
		p.Report(a, OutcomeConnect)
		if !status(t, p, instA).Ejected {
			t.Fatal("A not ejected")
		}
		// A reload that keeps A (configure again, same instances) keeps the ejection.
		p.Configure(p.Config())
		if err := p.SetInstances("static", []InstanceSpec{{URL: instA}, {URL: instB}}); err != nil {
			t.Fatal(err)
		}
		if !status(t, p, instA).Ejected || slices.Contains(eligibleIDs(p), instA) {
			t.Fatal("a reload brought an ejected instance back")
		}
	})
}

func outlierPool(t *testing.T, od OutlierConfig, urls ...string) *Pool {
	return newTestPool(t, &Config{Outlier: &od}, urls...)
}

func TestPool_EjectionBackoffDoublesAndCaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := outlierPool(t, OutlierConfig{Consecutive5xx: 3, ConsecutiveConnect: 2, BaseEjection: 10 * time.Second, MaxEjection: 25 * time.Second, MaxEjectedPercent: 50}, instA, instB)
		a := p.members[instA]
		fail := func(o Outcome, n int) {
			for range n {
				p.Report(a, o)
			}
		}
		fail(Outcome5xx, 2)
		p.Report(a, OutcomeSuccess) // a success resets the count
		fail(Outcome5xx, 2)
		if status(t, p, instA).Ejected {
			t.Fatal("ejected without 3 consecutive 5xx")
		}
		for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second} {
			start := time.Now()
			fail(OutcomeConnect, 2)
			s := status(t, p, instA)
			if !s.Ejected || s.EjectedUntil.Sub(start) != want {
				t.Fatalf("ejection %d: %+v, want ejected for %s", i+1, s, want)
			}
			if slices.Contains(eligibleIDs(p), instA) {
				t.Fatal("an ejected instance is eligible")
			}
			time.Sleep(want - time.Millisecond)
			synctest.Wait()
			if !status(t, p, instA).Ejected {
				t.Fatalf("ejection %d ended early", i+1)
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
			if !slices.Contains(eligibleIDs(p), instA) {
				t.Fatalf("ejection %d: instance not back after %s", i+1, want)
			}
		}
		// A long healthy spell fades the count: back to the base.
		time.Sleep(time.Hour)
		fail(OutcomeConnect, 2)
		if d := status(t, p, instA).EjectedUntil.Sub(time.Now()); d != 10*time.Second {
			t.Fatalf("ejection after a long healthy spell lasts %s, want the base 10s", d)
		}
	})
}

func TestPool_NeverEjectsMoreThanMaxPercent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := outlierPool(t, OutlierConfig{Consecutive5xx: 1, ConsecutiveConnect: 1, BaseEjection: time.Minute, MaxEjection: time.Hour, MaxEjectedPercent: 50}, instA, instB, instC)
		for _, id := range []string{instA, instB, instC} {
			p.Report(p.members[id], OutcomeConnect)
		}
		ejected := 0
		for _, s := range p.Instances() {
			if s.Ejected {
				ejected++
			}
		}
		if ejected != 1 {
			t.Fatalf("%d of 3 instances ejected with max_ejected_percent 50, want 1", ejected)
		}
	})
}

// healthServer answers checks per host: hosts in down fail.
type healthServer struct {
	mu     sync.Mutex
	down   map[string]bool
	checks int
}

func (h *healthServer) set(host string, down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down[host] = down
}

func (h *healthServer) RoundTrip(req *http.Request) (*http.Response, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks++
	if req.URL.Path != "/healthz" || req.Header.Get("User-Agent") != healthCheckUserAgent {
		return respond(req, 404), nil
	}
	if h.down[req.URL.Host] {
		return nil, errors.New("connection refused")
	}
	return respond(req, 204), nil
}

func TestPool_ActiveHealthChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := &healthServer{down: map[string]bool{}}
		hc := &HealthCheckConfig{Path: "/healthz", Interval: time.Second, Timeout: 100 * time.Millisecond, Healthy: 2, Unhealthy: 3, StatusMin: 200, StatusMax: 299}
		p := newTestPool(t, &Config{HealthCheck: hc, Transport: hs, Outlier: &OutlierConfig{ConsecutiveConnect: 1, BaseEjection: time.Hour, MaxEjection: time.Hour, MaxEjectedPercent: 50}}, instA, instB)
		synctest.Wait()
		hs.set("10.0.0.1:80", true)
		time.Sleep(1500 * time.Millisecond) // two failed checks (±10% jitter)
		synctest.Wait()
		if !slices.Contains(eligibleIDs(p), instA) {
			t.Fatal("unhealthy after 2 failed checks; the threshold is 3")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := eligibleIDs(p); !slices.Equal(got, []string{instB}) {
			t.Fatalf("after 3 failed checks: eligible %v, want only B", got)
		}
		// Passive ejection on top; a recovered instance comes back on its
		// checks, ending the ejection early.
		p.Report(p.members[instA], OutcomeConnect)
		hs.set("10.0.0.1:80", false)
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		if got := eligibleIDs(p); !slices.Equal(got, []string{instA, instB}) {
			t.Fatalf("after 2 passing checks: eligible %v, want A and B", got)
		}
		// A removed instance is no longer checked.
		if err := p.SetInstances("static", []InstanceSpec{{URL: instB}}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		hs.mu.Lock()
		before := hs.checks
		hs.mu.Unlock()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		hs.mu.Lock()
		after := hs.checks
		hs.mu.Unlock()
		if n := after - before; n < 9 || n > 12 {
			t.Fatalf("%d checks in 10s for one instance checked every second", n)
		}
		p.Close() // the checks stop; synctest fails the test if any goroutine is left
	})
}

func TestPool_HealthCheckRespectsTimeoutAndStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			if req.URL.Host == "10.0.0.1:80" {
				<-req.Context().Done() // never answers
				return nil, req.Context().Err()
			}
			return respond(req, 503), nil // answers, with a failing status
		})
		hc := &HealthCheckConfig{Path: "/healthz", Interval: time.Second, Timeout: 200 * time.Millisecond, Healthy: 1, Unhealthy: 1, StatusMin: 200, StatusMax: 399}
		p := newTestPool(t, &Config{HealthCheck: hc, Transport: slow}, instA, instB)
		time.Sleep(300 * time.Millisecond)
		synctest.Wait()
		if got := eligibleIDs(p); len(got) != 0 {
			t.Fatalf("eligible %v; one check timed out and one got 503", got)
		}
	})
}

// RoundTripperFunc adapts a function to http.RoundTripper.
type RoundTripperFunc func(*http.Request) (*http.Response, error)

func (f RoundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestPools_RetainClosesRemovedPools(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := NewPools(nil, nil)
		a, b := ps.Get("a"), ps.Get("b")
		if ps.Get("a") != a {
			t.Fatal("Get made a second pool for the same backend")
		}
		b.Configure(&Config{HealthCheck: &HealthCheckConfig{Path: "/", Interval: time.Second, Timeout: time.Second, Healthy: 1, Unhealthy: 1, StatusMin: 200, StatusMax: 299},
			Transport: RoundTripperFunc(func(r *http.Request) (*http.Response, error) { return respond(r, 200), nil })})
		if err := b.SetInstances("static", []InstanceSpec{{URL: instA}}); err != nil {
			t.Fatal(err)
		}
		ps.Retain(map[string]bool{"a": true})
		if _, ok := ps.Lookup("b"); ok {
			t.Fatal("b kept")
		}
		if err := b.SetInstances("static", nil); err == nil {
			t.Fatal("a closed pool accepted instances")
		}
		ps.Close()
		synctest.Wait()
		_ = context.Background()
	})
}

func TestPool_EjectedInstanceReAddedWhileDrainingStillReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := outlierPool(t, OutlierConfig{Consecutive5xx: 1, ConsecutiveConnect: 1, BaseEjection: 10 * time.Second, MaxEjection: time.Minute, MaxEjectedPercent: 50}, instA, instB)
		a := p.members[instA]
		a.inFlight.Add(1)
		p.Report(a, OutcomeConnect)
		if err := p.SetInstances("static", []InstanceSpec{{URL: instB}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if err := p.SetInstances("static", []InstanceSpec{{URL: instA}, {URL: instB}}); err != nil {
			t.Fatal(err)
		}
		if s := status(t, p, instA); !s.Ejected || s.Draining {
			t.Fatalf("re-added instance %+v, want still ejected, not draining", s)
		}
		time.Sleep(8 * time.Second)
		synctest.Wait()
		if !slices.Contains(eligibleIDs(p), instA) {
			t.Fatal("a re-added instance never came back from its ejection")
		}
		p.release(a)
	})
}
