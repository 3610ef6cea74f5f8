package server_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// redisProxy forwards TCP connections to the test's Redis until it is
// taken down (its listener closed and every connection cut, as a server
// that went away), and can be brought back on the same address.
type redisProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newRedisProxy(t *testing.T, target string) *redisProxy {
	p := &redisProxy{t: t, target: target}
	p.up()
	t.Cleanup(p.down)
	return p
}

func (p *redisProxy) up() {
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, r)
			p.mu.Unlock()
			go func() { io.Copy(r, c); r.Close() }()
			go func() { io.Copy(c, r); c.Close() }()
		}
	}()
}

func (p *redisProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// startBehindRedisProxy starts a gateway whose rate limit lives in Redis,
// reached through a proxy, with storage.redis.on_failure set to mode.
func startBehindRedisProxy(t *testing.T, mode string) (*started, *redisProxy, *lockedBuffer) {
	t.Helper()
	return startBehindRedisProxyWith(t, mode, func(redisBlock string) string { return rateLimitedConfig(t, redisBlock, 5, "ip") })
}

// startBehindRedisProxyWith is startBehindRedisProxy with a configuration
// of the caller's, made from the storage.redis block.
func startBehindRedisProxyWith(t *testing.T, mode string, configFile func(redisBlock string) string) (*started, *redisProxy, *lockedBuffer) {
	t.Helper()
	redisURL := os.Getenv("GATEHOUSE_TEST_REDIS_URL")
	if redisURL == "" {
		t.Skip("GATEHOUSE_TEST_REDIS_URL is not set: the test takes a Redis down under a gateway (e.g. redis://127.0.0.1:6379/0)")
	}
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newRedisProxy(t, u.Host)
	u.Host = proxy.addr
	file := configFile(fmt.Sprintf("  redis: {url: %q, timeout: 50ms, on_failure: %s}", u.String(), mode))
	logs := &lockedBuffer{}
	g := serve(t, file, t.TempDir(), slog.New(slog.NewTextHandler(logs, nil)))
	return g, proxy, logs
}

// rateLimitedConfig writes a configuration with the given storage.redis
// block and one anonymous API with a rate limit of rate a minute per key
// (a name of its own, so that its buckets are the test's), in front of a
// backend that answers "ok".
func rateLimitedConfig(t *testing.T, redisBlock string, rate int, key string) string {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	b := make([]byte, 6)
	rand.Read(b)
	file := filepath.Join(t.TempDir(), "gatehouse.yaml")
	cfg := fmt.Sprintf(`
server:
  listeners: [{name: public, address: "127.0.0.1:0"}]
  admin: {address: "127.0.0.1:0"}
  timeouts: {shutdown: 5s}
storage:
%s
backends:
  - name: static
    instances: [{url: %q}]
apis:
  - name: limited
    backend: static
    auth: {anonymous: true}
    rate_limits:
      - {name: rl-%s, rate: %d, period: 1m, key: [%s]}
`, redisBlock, backend.URL, hex.EncodeToString(b), rate, key)
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func metricLine(t *testing.T, admin, name string) string {
	t.Helper()
	res, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, name+" ") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// on_failure: local. With Redis gone the gateway goes on limiting, in its
// own memory (5 more, then 429, never 503), says so in its log and
// metrics, and uses Redis's bucket again once Redis is back.
func TestRedisFailure_LocalLimitsGoOn(t *testing.T) {
	g, proxy, logs := startBehindRedisProxy(t, "local")
	for i := range 2 {
		if s := status(t, g.url+"/x"); s != 200 {
			t.Fatalf("request %d with Redis up: %d", i+1, s)
		}
	}
	proxy.down()
	var codes []int
	for range 7 {
		codes = append(codes, status(t, g.url+"/x"))
	}
	if fmt.Sprint(codes) != "[200 200 200 200 200 429 429]" {
		t.Fatalf("with Redis down: %v; want the limit's 5, then 429", codes)
	}
	if m := metricLine(t, g.admin, "gatehouse_ratelimit_redis_available"); m != "gatehouse_ratelimit_redis_available 0" {
		t.Errorf("metric: %q", m)
	}
	if m := metricLine(t, g.admin, "gatehouse_ratelimit_redis_failures_total"); m == "" || m == "gatehouse_ratelimit_redis_failures_total 0" {
		t.Errorf("failures metric: %q", m)
	}
	if !strings.Contains(logs.String(), "Redis is failing") || !strings.Contains(logs.String(), "deciding rate limits in this gateway's memory") {
		t.Errorf("log:\n%s", logs.String())
	}

	proxy.up()
	// Redis's bucket holds the first two requests: three more, then 429.
	allowed := 0
	eventually(t, 5*time.Second, "Redis's bucket decides again", func() bool {
		s := status(t, g.url+"/x")
		if s == 200 {
			allowed++
		}
		return s == 200
	})
	for range 5 {
		if status(t, g.url+"/x") == 200 {
			allowed++
		}
	}
	if allowed != 3 {
		t.Errorf("after Redis came back %d requests were allowed; want the 3 its bucket had left", allowed)
	}
	if m := metricLine(t, g.admin, "gatehouse_ratelimit_redis_available"); m != "gatehouse_ratelimit_redis_available 1" {
		t.Errorf("metric after recovery: %q", m)
	}
	if !strings.Contains(logs.String(), "Redis answers again") {
		t.Errorf("no recovery line in the log:\n%s", logs.String())
	}
}

// on_failure: allow. With Redis gone rate-limited requests go through
// unchecked: past the limit, without a RateLimit field (nothing was
// counted), with the RateLimit-Policy still; the metrics count them.
func TestRedisFailure_AllowLetsThrough(t *testing.T) {
	g, proxy, logs := startBehindRedisProxy(t, "allow")
	if s := status(t, g.url+"/x"); s != 200 {
		t.Fatalf("with Redis up: %d", s)
	}
	proxy.down()
	for i := range 12 { // the limit is 5
		res, err := http.Get(g.url + "/x")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Ratelimit") != "" || res.Header.Get("Ratelimit-Policy") == "" {
			t.Fatalf("request %d with Redis down: %d, RateLimit %q, RateLimit-Policy %q; want 200 unchecked",
				i+1, res.StatusCode, res.Header.Get("Ratelimit"), res.Header.Get("Ratelimit-Policy"))
		}
	}
	if m := metricLine(t, g.admin, "gatehouse_ratelimit_redis_skipped_total"); m == "" || m == "gatehouse_ratelimit_redis_skipped_total 0" {
		t.Errorf("skipped metric: %q", m)
	}
	if !strings.Contains(logs.String(), "letting rate-limited requests through unchecked") {
		t.Errorf("log:\n%s", logs.String())
	}
	proxy.up()
	// Redis's bucket holds the first request and the one that finds it
	// back (the first with a RateLimit field): three more, then 429.
	eventually(t, 5*time.Second, "Redis's bucket decides again", func() bool { return statusHas(t, g.url+"/x", "Ratelimit") })
	if codes := statuses(t, g.url+"/x", 4); codes != "[200 200 200 429]" {
		t.Fatalf("after Redis came back: %s", codes)
	}
}

// statusHas reports whether a response to url is 200 with the field name.
func statusHas(t *testing.T, url, name string) bool {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode == 200 && res.Header.Get(name) != ""
}

// A limit's own on_redis_failure replaces storage.redis.on_failure: with
// Redis gone, the login limit (deny) refuses with 503 while the catalog's
// (allow) lets requests through, and the API's other limit follows the
// gateway's local.
func TestRedisFailure_ALimitsOwnMode(t *testing.T) {
	g, proxy, _ := startBehindRedisProxyWith(t, "local", func(redisBlock string) string {
		file := rateLimitedConfig(t, redisBlock, 5, "ip")
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		extra := `
  - name: login
    path_prefix: /login
    backend: static
    auth: {anonymous: true}
    rate_limits:
      - {name: login-%[1]s, rate: 5, period: 1m, key: [ip], on_redis_failure: deny}
  - name: catalog
    path_prefix: /catalog
    backend: static
    auth: {anonymous: true}
    rate_limits:
      - {name: catalog-%[1]s, rate: 1, period: 1m, key: [ip], on_redis_failure: allow}
`
		if err := os.WriteFile(file, append(b, fmt.Sprintf(extra, filepath.Base(t.TempDir()))...), 0o644); err != nil {
			t.Fatal(err)
		}
		return file
	})
	if got := statuses(t, g.url+"/catalog/x", 2); got != "[200 429]" {
		t.Fatalf("the catalog with Redis up: %s", got)
	}
	proxy.down()
	for i := range 6 {
		if s := status(t, g.url+"/login/x"); s != 503 {
			t.Fatalf("login request %d with Redis down: %d, want 503 (on_redis_failure: deny)", i+1, s)
		}
		if s := status(t, g.url+"/catalog/x"); s != 200 {
			t.Fatalf("catalog request %d with Redis down: %d, want 200 (on_redis_failure: allow)", i+1, s)
		}
	}
	if got := statuses(t, g.url+"/x", 7); got != "[200 200 200 200 200 429 429]" {
		t.Fatalf("the API without a mode of its own (storage.redis.on_failure: local): %s", got)
	}
}

// on_failure: deny (the default). With Redis gone every rate-limited
// request gets 503 rate_limit_unavailable: the limit is never exceeded.
func TestRedisFailure_DenyRefuses(t *testing.T) {
	g, proxy, _ := startBehindRedisProxy(t, "deny")
	if s := status(t, g.url+"/x"); s != 200 {
		t.Fatalf("with Redis up: %d", s)
	}
	proxy.down()
	start := time.Now()
	for i := range 20 {
		if s := status(t, g.url+"/x"); s != 503 {
			t.Fatalf("request %d with Redis down: %d, want 503", i+1, s)
		}
	}
	res, err := http.Get(g.url + "/x")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Retry-After") != "1" {
		t.Errorf("a refusal: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if m := metricLine(t, g.admin, "gatehouse_ratelimit_redis_skipped_total"); m == "" || m == "gatehouse_ratelimit_redis_skipped_total 0" {
		t.Errorf("skipped metric: %q", m)
	}
	// Three decisions wait for the 50ms timeout at most; the others do not
	// wait for Redis at all.
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("20 refusals took %v", took)
	}
	// Back: the background probe finds Redis with no request sent, and
	// says so in the gauge.
	proxy.up()
	eventually(t, 5*time.Second, "the availability gauge to say 1 with no traffic", func() bool {
		return metricLine(t, g.admin, "gatehouse_ratelimit_redis_available") == "gatehouse_ratelimit_redis_available 1"
	})
	if s := status(t, g.url+"/x"); s != 200 {
		t.Fatalf("with Redis back: %d", s)
	}
}
