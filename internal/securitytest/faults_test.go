package securitytest_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/securitytest"
)

// timedGet sends one request and returns its status (0 on a transport
// error) and how long it took.
func timedGet(c *http.Client, url string) (int, time.Duration) {
	start := time.Now()
	res, err := c.Get(url)
	if err != nil {
		return 0, time.Since(start)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, time.Since(start)
}

// Fault: the backend is slow, then killed, then flapping (up 100ms, down
// 100ms). The gateway answers every request itself and quickly (504 after
// the 1s response_header timeout, 502 at once when the backend is down),
// never hangs, and leaks no goroutine.
func TestFault_BackendSlowKilledFlapping(t *testing.T) {
	e := newEnv(t, envOptions{ResponseHeader: "1s"})
	client := &http.Client{Timeout: 10 * time.Second}
	url := "http://" + e.gw.Addr + "/public/x"
	if st, _ := timedGet(client, url); st != 200 {
		t.Fatalf("warm-up: %d", st)
	}
	base := securitytest.Goroutines()
	var (
		worstMu sync.Mutex
		worst   [3]time.Duration
	)
	var answered, hung atomic.Int64
	run := func(phase int, n int, want ...int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				st, d := timedGet(client, url)
				if st == 0 {
					hung.Add(1)
					t.Errorf("phase %d: no answer after %v", phase, d)
					return
				}
				answered.Add(1)
				ok := false
				for _, w := range want {
					ok = ok || st == w
				}
				if !ok {
					t.Errorf("phase %d: status %d, want one of %v", phase, st, want)
				}
				worstMu.Lock()
				worst[phase] = max(worst[phase], d)
				worstMu.Unlock()
			})
		}
		wg.Wait()
	}
	// Slow: the backend takes 3s; the gateway gives up after 1s.
	e.be.SetDelay(3 * time.Second)
	run(0, 20, 504)
	e.be.SetDelay(0)
	// Killed.
	addr := e.be.Addr()
	e.be.Close()
	run(1, 20, 502)
	// Flapping on the same address.
	stop := make(chan struct{})
	var flapper sync.WaitGroup
	flapper.Go(func() {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
		for {
			ln, err := net.Listen("tcp", addr)
			if err == nil {
				go srv.Serve(ln)
				time.Sleep(100 * time.Millisecond)
				ln.Close()
				srv.SetKeepAlivesEnabled(false)
				srv.SetKeepAlivesEnabled(true)
			}
			select {
			case <-stop:
				srv.Close()
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		run(2, 4, 200, 502)
	}
	close(stop)
	flapper.Wait()
	if worst[0] > 2500*time.Millisecond || worst[1] > 500*time.Millisecond || worst[2] > 2500*time.Millisecond {
		t.Errorf("slowest answers: slow backend %v, killed %v, flapping %v", worst[0], worst[1], worst[2])
	}
	client.CloseIdleConnections()
	n := securitytest.WaitGoroutines(t, base, 10, 10*time.Second)
	t.Logf("FIGURE backend faults: %d requests answered, %d hung; slowest answer: slow backend %v (504), killed %v (502), flapping %v; goroutines %d before, %d after",
		answered.Load(), hung.Load(), worst[0].Round(time.Millisecond), worst[1].Round(time.Millisecond), worst[2].Round(time.Millisecond), base, n)
}

// Fault: the backend sends its head and part of the body, then nothing
// (a hung process, a stalled stream). With response_idle 1s every such
// response is cut off after about a second (the client never gets it
// whole), normal requests are served meanwhile, and nothing is left
// behind: goroutines return to where they were.
func TestFault_BackendStallsMidBody(t *testing.T) {
	e := newEnv(t, envOptions{ResponseIdle: "1s"})
	client := &http.Client{Timeout: 10 * time.Second}
	if st, _ := timedGet(client, "http://"+e.gw.Addr+"/public/x"); st != 200 {
		t.Fatalf("warm-up: %d", st)
	}
	base := securitytest.Goroutines()
	stop := make(chan struct{})
	ok, failed, wait := normalLoad(e.gw.Addr, stop)
	const stalls = 20
	var (
		wg            sync.WaitGroup
		mu            sync.Mutex
		worst         time.Duration
		whole, cutOff int
	)
	for range stalls {
		wg.Go(func() {
			start := time.Now()
			res, err := client.Get("http://" + e.gw.Addr + "/stall")
			if err == nil {
				_, err = io.ReadAll(res.Body)
				res.Body.Close()
			}
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			worst = max(worst, took)
			if err == nil {
				whole++
			} else {
				cutOff++
			}
		})
	}
	wg.Wait()
	close(stop)
	wait()
	if whole != 0 || cutOff != stalls {
		t.Errorf("%d stalled responses arrived whole, %d cut off; want 0 and %d", whole, cutOff, stalls)
	}
	if worst > 3*time.Second {
		t.Errorf("a stalled response lasted %v with response_idle 1s", worst)
	}
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Errorf("normal clients: %d served, %d failed meanwhile", ok.Load(), failed.Load())
	}
	aborted := strings.Count(e.gw.AccessLog.String(), "upstream response body idle timeout")
	if aborted != stalls {
		t.Errorf("%d access lines give the idle timeout as the cause, want %d", aborted, stalls)
	}
	client.CloseIdleConnections()
	n := securitytest.WaitGoroutines(t, base, 10, 10*time.Second)
	t.Logf("FIGURE stalled bodies: %d responses stalled mid-body, %d cut off, slowest after %v (response_idle 1s), %d access lines with the cause; normal clients %d served, %d failed; goroutines %d before, %d after",
		stalls, cutOff, worst.Round(10*time.Millisecond), aborted, ok.Load(), failed.Load(), base, n)
}

// Fault: clients that give up on a slow backend (a client timeout, a
// closed browser tab) and leave. The gateway must not go on waiting for
// answers no one will read: each abandoned request is cancelled within a
// second of its client leaving, its backend connection closed, and the
// access log says 499 client_closed, on the plain listener (h1, which
// checks for such clients) and the TLS one (Go's server) alike; normal
// requests are served meanwhile and goroutines return to where they were.
// With response_header 30s, without the check each one would hold a
// backend connection for 30 s.
func TestFault_ClientsAbandonSlowRequests(t *testing.T) {
	e := newEnv(t, envOptions{ResponseHeader: "30s"})
	client := &http.Client{Timeout: 10 * time.Second}
	if st, _ := timedGet(client, "http://"+e.gw.Addr+"/public/x"); st != 200 {
		t.Fatalf("warm-up: %d", st)
	}
	client.CloseIdleConnections()
	base := securitytest.Goroutines()
	stop := make(chan struct{})
	ok, failed, wait := normalLoad(e.gw.Addr, stop)
	const clients = 20 // per listener
	dial := map[string]func() (net.Conn, error){
		"plain": func() (net.Conn, error) { return net.Dial("tcp", e.gw.Addr) },
		"tls": func() (net.Conn, error) {
			return tls.Dial("tcp", e.gw.TLSAddr, securitytest.TLSClientConfig(e.pool, "http/1.1"))
		},
	}
	var figures []string
	for _, name := range []string{"plain", "tls"} {
		e.gw.AccessLog.Reset()
		var conns []net.Conn
		for range clients {
			c, err := dial[name]()
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			io.WriteString(c, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
		}
		waitUntil(t, 5*time.Second, "the backend to hold every request", func() bool { return e.be.Hanging() == clients })
		left := time.Now()
		for _, c := range conns {
			c.Close()
		}
		waitUntil(t, 5*time.Second, "the gateway to give up the abandoned requests", func() bool { return e.be.Hanging() == 0 })
		released := time.Since(left)
		if released > time.Second {
			t.Errorf("%s: the abandoned requests were given up %v after their clients left, want within a second", name, released)
		}
		waitUntil(t, 5*time.Second, "the access lines", func() bool {
			return strings.Count(e.gw.AccessLog.String(), `"denial":"client_closed"`) == clients
		})
		if n := strings.Count(e.gw.AccessLog.String(), `"status":499`); n != clients {
			t.Errorf("%s: %d access lines with status 499, want %d", name, n, clients)
		}
		figures = append(figures, fmt.Sprintf("%s: %d given up %v after their clients left", name, clients, released.Round(10*time.Millisecond)))
	}
	close(stop)
	wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Errorf("normal clients: %d served, %d failed meanwhile", ok.Load(), failed.Load())
	}
	n := securitytest.WaitGoroutines(t, base, 10, 10*time.Second)
	t.Logf("FIGURE abandoned requests: %s (response_header 30s); each logged 499 client_closed; normal clients %d served, %d failed; goroutines %d before, %d after",
		strings.Join(figures, "; "), ok.Load(), failed.Load(), base, n)
}

// waitUntil polls cond every 10 ms for up to d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Fault: a reload every second under steady load. Every request, to an
// authenticated and to an anonymous API, succeeds. It runs 60s when CI is
// set and 10s otherwise.
func TestFault_ReloadEverySecondUnderLoad(t *testing.T) {
	duration := 10 * time.Second
	if os.Getenv("CI") != "" {
		duration = 60 * time.Second
	}
	e := newEnv(t, envOptions{})
	admin := e.token("admins")
	variants := []string{
		e.cfg,
		strings.Replace(e.cfg, "max_body: 1KiB", "max_body: 2KiB", 1),
		strings.Replace(e.cfg, "apis:\n", "apis:\n  - name: extra\n    path_prefix: /extra\n    backend: be\n    auth: {anonymous: true}\n", 1),
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var total, failed atomic.Int64
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second}
			for ctx.Err() == nil {
				var req *http.Request
				if i%2 == 0 {
					req, _ = http.NewRequest("GET", "http://"+e.gw.Addr+"/admin/x", nil)
					req.Header.Set("Authorization", "Bearer "+admin)
				} else {
					req, _ = http.NewRequest("POST", "http://"+e.gw.Addr+"/public/x", strings.NewReader(strings.Repeat("b", 512)))
				}
				res, err := c.Do(req)
				total.Add(1)
				if err != nil || res.StatusCode != 200 {
					failed.Add(1)
					if err == nil {
						t.Errorf("status %d", res.StatusCode)
					} else {
						t.Errorf("error %v", err)
					}
				}
				if res != nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	reloads := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
loop:
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		e.gw.SetConfig(variants[i%len(variants)])
		if err := e.gw.Server.Reload(context.Background(), "test"); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		reloads++
	}
	wg.Wait()
	if total.Load() == 0 || failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed", failed.Load(), total.Load())
	}
	t.Logf("FIGURE reload under load: %v, %d reloads, %d requests, %d failed", duration, reloads, total.Load(), failed.Load())
}
