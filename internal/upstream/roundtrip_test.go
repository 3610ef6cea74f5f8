package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

var errDial = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

// exchangeRecord is what the Record hook saw.
type exchangeRecord struct {
	instance string
	attempts int
}

func newTestRoundTripper(p *Pool, base http.RoundTripper, o ExchangeOptions) (*RoundTripper, *exchangeRecord) {
	rec := &exchangeRecord{}
	o.Record = func(_ *http.Request, instance string, attempts int) {
		rec.instance, rec.attempts = instance, attempts
	}
	return NewRoundTripper(p, base, o), rec
}

func retryConfig() *Config {
	return &Config{Retry: RetryConfig{MaxRetries: 2, BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond,
		Budget: BudgetConfig{Percent: 100, MinRetries: 100, Window: 10 * time.Second}}}
}

func request(t *testing.T, method string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "/orders/1", body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// deadHost fails every attempt to one host with err.
func deadHost(host string, err error) func(*http.Request) (*http.Response, error) {
	return func(req *http.Request) (*http.Response, error) {
		if req.URL.Host == host {
			return nil, err
		}
		return respond(req, 200), nil
	}
}

func TestRoundTripper_GETRetriedOnAnotherInstanceAfterConnectError(t *testing.T) {
	p := newTestPool(t, retryConfig(), instA, instB)
	fb := &fakeBackend{answer: deadHost("10.0.0.1:80", errDial)}
	rt, rec := newTestRoundTripper(p, fb, ExchangeOptions{})
	for range 4 {
		res, err := rt.RoundTrip(request(t, "GET", nil))
		if err != nil {
			t.Fatalf("GET failed: %v", err)
		}
		res.Body.Close()
		if rec.instance != instB {
			t.Fatalf("answered by %s", rec.instance)
		}
	}
	hosts := fb.hosts()
	for i, h := range hosts {
		if h == "10.0.0.1:80" && (i+1 >= len(hosts) || hosts[i+1] != "10.0.0.2:80") {
			t.Fatalf("a failed attempt on A was not retried on B: %v", hosts)
		}
	}
	if !slices.Contains(hosts, "10.0.0.1:80") {
		t.Fatalf("A was never tried: %v", hosts)
	}
}

func TestRoundTripper_POSTNeverRetried(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		body io.Reader
	}{
		{"connect_error_no_body", errDial, nil},
		{"connect_error_with_body", errDial, strings.NewReader("order")},
		{"reset", syscall.ECONNRESET, strings.NewReader("order")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPool(t, retryConfig(), instA)
			fb := &fakeBackend{answer: deadHost("10.0.0.1:80", tc.err)}
			rt, rec := newTestRoundTripper(p, fb, ExchangeOptions{})
			_, err := rt.RoundTrip(request(t, "POST", tc.body))
			var ue *Error
			if !errors.As(err, &ue) || ue.Kind != ErrConnect {
				t.Fatalf("error %v, want a connect error", err)
			}
			if n := len(fb.hosts()); n != 1 || rec.attempts != 1 {
				t.Fatalf("POST sent %d times (recorded %d attempts), want once", n, rec.attempts)
			}
		})
	}
}

func TestRoundTripper_NonIdempotentOptIn(t *testing.T) {
	cfg := retryConfig()
	cfg.Retry.NonIdempotent = true
	p := newTestPool(t, cfg, instA, instB)
	fb := &fakeBackend{answer: deadHost("10.0.0.1:80", errDial)}
	rt, rec := newTestRoundTripper(p, fb, ExchangeOptions{})
	for range 2 {
		res, err := rt.RoundTrip(request(t, "POST", strings.NewReader("order")))
		if err != nil {
			t.Fatalf("POST with non_idempotent retries failed: %v", err)
		}
		res.Body.Close()
	}
	if rec.instance != instB {
		t.Fatalf("answered by %s", rec.instance)
	}
	for i, b := range fb.bodies {
		if fb.calls[i] == "10.0.0.2:80" && b != "order" {
			t.Fatalf("retried attempt got body %q, want the whole body", b)
		}
	}
}

// Threat: a retry after part of the body was sent would give the backend
// a second, different request.
func TestRoundTripper_NeverRetriesAfterBodyBytesWereSent(t *testing.T) {
	p := newTestPool(t, retryConfig(), instA, instB)
	attempts := 0
	base := RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		attempts++
		buf := make([]byte, 2)
		_, _ = req.Body.Read(buf) // the transport starts streaming the body
		return nil, syscall.ECONNRESET
	})
	rt, _ := newTestRoundTripper(p, base, ExchangeOptions{})
	_, err := rt.RoundTrip(request(t, "PUT", strings.NewReader("payload")))
	if err == nil || attempts != 1 {
		t.Fatalf("PUT whose body was partly sent: %d attempts (err %v), want 1", attempts, err)
	}
}

func TestRoundTripper_UnreadBodyIsRetriedWhole(t *testing.T) {
	p := newTestPool(t, retryConfig(), instA, instB)
	fb := &fakeBackend{}
	fb.answer = deadHost("10.0.0.1:80", errDial)
	base := RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if req.URL.Host == "10.0.0.1:80" {
			req.Body.Close() // a transport closes the body on failure
			return nil, errDial
		}
		return fb.RoundTrip(req)
	})
	rt, rec := newTestRoundTripper(p, base, ExchangeOptions{})
	for range 2 {
		res, err := rt.RoundTrip(request(t, "PUT", strings.NewReader("payload")))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	if rec.instance != instB || !slices.Equal(fb.bodies, []string{"payload", "payload"}) {
		t.Fatalf("bodies %q, want the whole body each time", fb.bodies)
	}
}

func TestRoundTripper_RetriesConfiguredStatusesOnly(t *testing.T) {
	for _, tc := range []struct {
		name     string
		onStatus []int
		status   int
		want     int // attempts
	}{
		{"listed", []int{502, 503}, 503, 2},
		{"not_listed", []int{502}, 503, 1},
		{"none_by_default", nil, 503, 1},
		{"success_never", []int{503}, 200, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := retryConfig()
			for _, s := range tc.onStatus {
				cfg.Retry.OnStatus.Add(s)
			}
			p := newTestPool(t, cfg, instA, instB)
			base := RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
				if req.URL.Host == "10.0.0.1:80" {
					return respond(req, tc.status), nil
				}
				return respond(req, 200), nil
			})
			rt, rec := newTestRoundTripper(p, base, ExchangeOptions{})
			// Start on A: the round-robin counter is at 0.
			res, err := rt.RoundTrip(request(t, "GET", nil))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if rec.attempts != tc.want {
				t.Fatalf("%d attempts, want %d", rec.attempts, tc.want)
			}
		})
	}
}

func TestRoundTripper_BudgetBoundsRetries(t *testing.T) {
	cfg := retryConfig()
	cfg.Retry.Budget = BudgetConfig{Percent: 10, MinRetries: 0, Window: 10 * time.Second}
	p := newTestPool(t, cfg, instA)
	fb := &fakeBackend{answer: deadHost("10.0.0.1:80", errDial)}
	rt, _ := newTestRoundTripper(p, fb, ExchangeOptions{})
	for range 20 {
		_, _ = rt.RoundTrip(request(t, "GET", nil))
	}
	// 20 requests, each wanting 2 retries; 10% of 20 = 2 retries allowed.
	if n := len(fb.hosts()); n != 22 {
		t.Fatalf("%d attempts for 20 requests, want 22 (2 retries allowed by the budget)", n)
	}
}

func TestRoundTripper_AttemptTimeoutIs504AndNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(t, retryConfig(), instA, instB)
		attempts := 0
		base := RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			attempts++
			<-req.Context().Done()
			return nil, req.Context().Err()
		})
		rt, _ := newTestRoundTripper(p, base, ExchangeOptions{Request: 10 * time.Second, Attempt: time.Second})
		start := time.Now()
		_, err := rt.RoundTrip(request(t, "GET", nil))
		var ue *Error
		if !errors.As(err, &ue) || ue.Kind != ErrTimeout {
			t.Fatalf("error %v, want a timeout", err)
		}
		if d := time.Since(start); d != time.Second || attempts != 1 {
			t.Fatalf("gave up after %s and %d attempts, want 1s and 1", d, attempts)
		}
	})
}

func TestRoundTripper_RequestDeadlineCoversRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := retryConfig()
		cfg.Retry.OnStatus.Add(503)
		cfg.Retry.MaxRetries = 10
		cfg.Retry.BackoffBase, cfg.Retry.BackoffMax = 0, 0
		p := newTestPool(t, cfg, instA, instB)
		base := RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			select {
			case <-time.After(400 * time.Millisecond):
				return respond(req, 503), nil
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
		})
		rt, rec := newTestRoundTripper(p, base, ExchangeOptions{Request: time.Second, Attempt: 500 * time.Millisecond})
		start := time.Now()
		_, err := rt.RoundTrip(request(t, "GET", nil))
		var ue *Error
		if !errors.As(err, &ue) || ue.Kind != ErrTimeout {
			t.Fatalf("error %v, want a timeout", err)
		}
		if d := time.Since(start); d != time.Second || rec.attempts != 3 {
			t.Fatalf("ended after %s and %d attempts, want 1s and 3 (the third cut short)", d, rec.attempts)
		}
	})
}

func TestRoundTripper_ResponseBodyIsNotCutByTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(t, retryConfig(), instA)
		var reqCtx context.Context
		base := RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			reqCtx = req.Context()
			return respond(req, 200), nil
		})
		rt, _ := newTestRoundTripper(p, base, ExchangeOptions{Request: time.Second})
		res, err := rt.RoundTrip(request(t, "GET", nil))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second) // a long stream
		if reqCtx.Err() != nil {
			t.Fatal("the deadline cancelled a response whose headers had arrived")
		}
		res.Body.Close()
		if reqCtx.Err() == nil {
			t.Fatal("closing the body did not end the attempt")
		}
		if n := p.members[instA].InFlight(); n != 0 {
			t.Fatalf("%d in flight after the body was closed", n)
		}
	})
}

func TestRoundTripper_NoHealthyInstanceFails503Fast(t *testing.T) {
	p := newTestPool(t, retryConfig())
	fb := &fakeBackend{}
	rt, _ := newTestRoundTripper(p, fb, ExchangeOptions{})
	_, err := rt.RoundTrip(request(t, "GET", nil))
	var ue *Error
	if !errors.As(err, &ue) || ue.Kind != ErrNoHealthyInstance {
		t.Fatalf("error %v, want no_healthy_instance", err)
	}
	if len(fb.hosts()) != 0 {
		t.Fatal("a backend was called")
	}
}

func TestRoundTripper_ConcurrencyLimit(t *testing.T) {
	cfg := retryConfig()
	cfg.MaxConcurrent = 1
	p := newTestPool(t, cfg, instA)
	rt, _ := newTestRoundTripper(p, &fakeBackend{}, ExchangeOptions{})
	first, err := rt.RoundTrip(request(t, "GET", nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = rt.RoundTrip(request(t, "GET", nil)) // the first is still streaming
	var ue *Error
	if !errors.As(err, &ue) || ue.Kind != ErrConcurrencyLimit {
		t.Fatalf("second concurrent request: %v, want concurrency_limit", err)
	}
	first.Body.Close()
	res, err := rt.RoundTrip(request(t, "GET", nil))
	if err != nil {
		t.Fatalf("after the first finished: %v", err)
	}
	res.Body.Close()
}

func TestRoundTripper_OpenCircuitRefusesWithRetryAfter(t *testing.T) {
	cfg := retryConfig()
	cfg.Retry.MaxRetries = 0
	cfg.Breaker = &BreakerConfig{FailureRatio: 0.5, Window: 10 * time.Second, MinimumRequests: 4, OpenDuration: 30 * time.Second, HalfOpenRequests: 1}
	p := newTestPool(t, cfg, instA)
	fb := &fakeBackend{answer: func(req *http.Request) (*http.Response, error) { return respond(req, 500), nil }}
	rt, _ := newTestRoundTripper(p, fb, ExchangeOptions{})
	for range 4 {
		res, err := rt.RoundTrip(request(t, "GET", nil))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	_, err := rt.RoundTrip(request(t, "GET", nil))
	var ue *Error
	if !errors.As(err, &ue) || ue.Kind != ErrCircuitOpen || ue.RetryAfter <= 29*time.Second {
		t.Fatalf("error %v, want circuit_open with Retry-After ~30s", err)
	}
	if n := len(fb.hosts()); n != 4 {
		t.Fatalf("backend called %d times, want 4", n)
	}
}

func TestRoundTripper_ClientCancelIsNotABackendFailure(t *testing.T) {
	cfg := retryConfig()
	cfg.Outlier = &OutlierConfig{Consecutive5xx: 1, ConsecutiveConnect: 1, BaseEjection: time.Minute, MaxEjection: time.Minute, MaxEjectedPercent: 100}
	p := newTestPool(t, cfg, instA)
	ctx, cancel := context.WithCancel(context.Background())
	base := RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
		cancel()
		return nil, req.Context().Err()
	})
	rt, _ := newTestRoundTripper(p, base, ExchangeOptions{})
	_, err := rt.RoundTrip(request(t, "GET", nil).WithContext(ctx))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want the client's cancellation", err)
	}
	if status(t, p, instA).Ejected {
		t.Fatal("a client cancellation ejected the instance")
	}
}

func TestRoundTripper_DoesNotModifyTheRequest(t *testing.T) {
	p := newTestPool(t, retryConfig(), instA)
	rt, _ := newTestRoundTripper(p, &fakeBackend{}, ExchangeOptions{})
	req := request(t, "GET", nil)
	res, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if req.URL.Host != "" || req.URL.Scheme != "" {
		t.Fatalf("request URL changed to %s", req.URL)
	}
}

// headDeadliner is a base transport that enforces head deadlines itself,
// or declines with ErrNoHeadDeadline.
type headDeadliner struct {
	decline   bool
	deadlines []time.Duration // each deadline, from the call
	spans     []time.Duration // each deadline, from the now it was given
	fallbacks int
}

func (h *headDeadliner) RoundTrip(req *http.Request) (*http.Response, error) {
	h.fallbacks++
	return respond(req, 200), nil
}

func (h *headDeadliner) RoundTripHeadDeadline(req *http.Request, now, deadline time.Time) (*http.Response, error) {
	if h.decline {
		return nil, ErrNoHeadDeadline
	}
	h.deadlines = append(h.deadlines, time.Until(deadline))
	if now.IsZero() || now.After(time.Now()) {
		h.spans = append(h.spans, -1) // not a reading the caller made before the call
	} else {
		h.spans = append(h.spans, deadline.Sub(now))
	}
	time.Sleep(time.Until(deadline)) // a backend that never answers
	return nil, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
}

func TestRoundTripper_HeadDeadlinerEnforcesTheAttemptDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newTestPool(t, retryConfig(), instA, instB)
		base := &headDeadliner{}
		rt, rec := newTestRoundTripper(p, base, ExchangeOptions{Request: 10 * time.Second, Attempt: time.Second})
		start := time.Now()
		_, err := rt.RoundTrip(request(t, "GET", nil))
		var ue *Error
		if !errors.As(err, &ue) || ue.Kind != ErrTimeout || !errors.Is(err, errAttemptTimeout) {
			t.Fatalf("error %v, want an attempt timeout", err)
		}
		if d := time.Since(start); d != time.Second || rec.attempts != 1 || len(base.deadlines) != 1 || base.deadlines[0] != time.Second {
			t.Fatalf("gave up after %s, %d attempts, deadlines %v; want 1s, 1, [1s]", d, rec.attempts, base.deadlines)
		}
		// The attempt's start is handed down with its deadline, so that
		// the transport need not read the clock again.
		if len(base.spans) != 1 || base.spans[0] != time.Second {
			t.Fatalf("deadlines from the given now %v, want [1s]", base.spans)
		}
		if n := p.members[instA].InFlight() + p.members[instB].InFlight(); n != 0 {
			t.Fatalf("%d in flight after the attempt failed", n)
		}
	})
}

func TestRoundTripper_HeadDeadlinerMayDecline(t *testing.T) {
	p := newTestPool(t, retryConfig(), instA)
	base := &headDeadliner{decline: true}
	rt, _ := newTestRoundTripper(p, base, ExchangeOptions{Request: time.Second})
	res, err := rt.RoundTrip(request(t, "GET", nil))
	if err != nil || base.fallbacks != 1 {
		t.Fatalf("err %v, %d fallbacks; want the request sent once through RoundTrip", err, base.fallbacks)
	}
	res.Body.Close()
	if n := p.members[instA].InFlight(); n != 0 {
		t.Fatalf("%d in flight after the body was closed", n)
	}
}

// A retry whose backoff would end past the request's deadline is not
// made: the response that asked for it goes to the client at once.
func TestRoundTripper_NoRetryPastTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := retryConfig()
		cfg.Retry.OnStatus.Add(503)
		cfg.Retry.BackoffBase, cfg.Retry.BackoffMax = time.Hour, time.Hour // a wait below 1ms: about 3 in 10 million
		p := newTestPool(t, cfg, instA, instB)
		base := RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			time.Sleep(999 * time.Millisecond)
			return respond(req, 503), nil
		})
		rt, rec := newTestRoundTripper(p, base, ExchangeOptions{Request: time.Second, Attempt: time.Second})
		start := time.Now()
		res, err := rt.RoundTrip(request(t, "GET", nil))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 503 || rec.attempts != 1 || time.Since(start) != 999*time.Millisecond {
			t.Fatalf("status %d after %d attempts and %s, want 503, 1 and 999ms", res.StatusCode, rec.attempts, time.Since(start))
		}
	})
}
