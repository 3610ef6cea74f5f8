package upstream

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"
)

// BenchmarkProxy compares httputil.ReverseProxy over a plain transport
// with the same proxy over the RoundTripper (balancing, breaker, budget,
// deadlines, outcome reporting), against one loopback backend, in the same
// run.
func BenchmarkProxy(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	target, _ := url.Parse(backend.URL)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: false}
	defer tr.CloseIdleConnections()

	pool := NewPool("be", nil, nil)
	defer pool.Close()
	pool.Configure(&Config{
		Outlier: &OutlierConfig{Consecutive5xx: 5, ConsecutiveConnect: 3, BaseEjection: 30 * time.Second, MaxEjection: 5 * time.Minute, MaxEjectedPercent: 50},
		Breaker: &BreakerConfig{FailureRatio: 0.5, Window: 10 * time.Second, MinimumRequests: 20, OpenDuration: 30 * time.Second, HalfOpenRequests: 3},
		Retry: RetryConfig{MaxRetries: 2, BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond,
			Budget: BudgetConfig{Percent: 20, MinRetries: 10, Window: 10 * time.Second}},
		MaxConcurrent: 1000,
	})
	if err := pool.SetInstances("static", []InstanceSpec{{URL: backend.URL}}); err != nil {
		b.Fatal(err)
	}
	proxies := []struct {
		name string
		h    http.Handler
	}{
		{"plain", &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }, Transport: tr}},
		{"retrying", &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.Out.Host = "" },
			Transport: NewRoundTripper(pool, tr, ExchangeOptions{Request: 30 * time.Second, Attempt: 10 * time.Second})}},
	}
	for _, p := range proxies {
		b.Run(p.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/orders/1", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				p.h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
