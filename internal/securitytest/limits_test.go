package securitytest_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Threat: oversized requests that cost memory or time before any policy
// runs. Each is refused with its status and nothing is forwarded
// (limits in the test config: max_header_bytes 8KiB, max_uri 2KiB,
// max_body 1KiB).
func TestLimits_OversizedRequestsAreRefusedUnforwarded(t *testing.T) {
	e := newEnv(t, envOptions{})
	many := ""
	for i := range 2000 {
		many += fmt.Sprintf("X-H%d: v\r\n", i)
	}
	cases := []struct {
		name, raw string
		status    int
	}{
		{"huge_header", "GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n", 431},
		{"many_headers", "GET /x HTTP/1.1\r\nHost: x\r\n" + many + "\r\n", 431},
		{"long_uri", "GET /" + strings.Repeat("a", 3<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"long_query", "GET /x?" + strings.Repeat("q", 3<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"uri_over_uri_limit", "GET /" + strings.Repeat("a", 20<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"body_declared_too_large", "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n" + strings.Repeat("b", 2048), 413},
		{"body_chunked_too_large", "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + strings.Repeat("c", 2048) + "\r\n0\r\n\r\n", 413},
		{"body_huge_length", "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1099511627776\r\n\r\n", 413},
	}
	var refused int
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.reset()
			x, err := sendRaw(e.gw.Addr, []byte(tc.raw))
			if err != nil {
				t.Fatal(err)
			}
			acc := e.settle()
			if len(x.Responses) == 0 || x.Responses[0].StatusCode != tc.status {
				t.Fatalf("responses %d (%q), want %d", len(x.Responses), firstLine(x.Raw), tc.status)
			}
			refused++
			if n := len(e.be.Requests()); n != 0 {
				t.Errorf("%d requests reached the backend whole", n)
			}
			e.checkForwarded(t, acc)
		})
	}
	t.Logf("FIGURE size limits: %d oversized requests, %d refused with 431/414/413, 0 forwarded whole", len(cases), refused)
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}

// normalLoad sends sequential GETs on fresh connections until stop is
// closed and counts failures; it stands for the clients that must keep
// being served during a slow attack.
func normalLoad(addr string, stop <-chan struct{}) (ok, failed *atomic.Int64, wait func()) {
	ok, failed = &atomic.Int64{}, &atomic.Int64{}
	var wg sync.WaitGroup
	wg.Go(func() {
		c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := c.Get("http://" + addr + "/normal")
			if err == nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			if err != nil || res.StatusCode != 200 {
				failed.Add(1)
			} else {
				ok.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return ok, failed, wg.Wait
}

// slowConn opens a connection, writes first, then one byte of rest every
// interval, and returns how long the server took to close it (or the
// deadline).
func slowConn(addr, first, rest string, interval, deadline time.Duration) (time.Duration, bool) {
	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, false
	}
	defer c.Close()
	io.WriteString(c, first)
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c) // returns when the server closes
		close(closed)
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	end := time.After(deadline)
	for i := 0; ; i++ {
		select {
		case <-closed:
			return time.Since(start), true
		case <-end:
			return time.Since(start), false
		case <-t.C:
			if i < len(rest) {
				c.Write([]byte{rest[i]})
			}
		}
	}
}

// Threat: slowloris and slow body. Clients that trickle their headers or
// their body hold a connection, a goroutine and buffers; enough of them
// exhaust the gateway. Each slow connection must be closed by the read
// timeouts (read_header 1s, read 2s here) while normal clients are
// served throughout.
func TestLimits_SlowClientsAreCutOffWhileOthersAreServed(t *testing.T) {
	e := newEnv(t, envOptions{ReadHeader: "1s", Read: "2s", Write: "5s"})
	stop := make(chan struct{})
	ok, failed, wait := normalLoad(e.gw.Addr, stop)
	const slow = 40
	type result struct {
		kind   string
		took   time.Duration
		closed bool
	}
	results := make(chan result, 2*slow)
	var wg sync.WaitGroup
	headerLines := "X-A: " + strings.Repeat("a", 200) + "\r\n"
	for i := range slow {
		wg.Go(func() {
			took, closed := slowConn(e.gw.Addr, "GET /slowloris HTTP/1.1\r\nHost: x\r\n", headerLines, 100*time.Millisecond, 6*time.Second)
			results <- result{"slowloris", took, closed}
		})
		wg.Go(func() {
			took, closed := slowConn(e.gw.Addr, "POST /slowbody HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", strings.Repeat("b", 1000), 100*time.Millisecond, 8*time.Second)
			results <- result{"slow_body", took, closed}
		})
		_ = i
	}
	wg.Wait()
	close(stop)
	wait()
	close(results)
	worst := map[string]time.Duration{}
	open := 0
	for r := range results {
		if !r.closed {
			open++
			t.Errorf("a %s connection was still open after %v", r.kind, r.took)
		}
		worst[r.kind] = max(worst[r.kind], r.took)
	}
	if worst["slowloris"] > 1*time.Second+1500*time.Millisecond {
		t.Errorf("slowloris connections lasted up to %v with read_header 1s", worst["slowloris"])
	}
	if worst["slow_body"] > 2*time.Second+1500*time.Millisecond {
		t.Errorf("slow-body connections lasted up to %v with read 2s", worst["slow_body"])
	}
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Errorf("normal clients: %d served, %d failed during the attack", ok.Load(), failed.Load())
	}
	for _, r := range e.be.Requests() {
		if r.Target == "/slowbody" {
			t.Errorf("a slow body reached the backend whole")
		}
	}
	t.Logf("FIGURE slow clients: %d slowloris + %d slow-body connections, closed after at most %v and %v, %d left open; normal clients %d served, %d failed",
		slow, slow, worst["slowloris"].Round(10*time.Millisecond), worst["slow_body"].Round(10*time.Millisecond), open, ok.Load(), failed.Load())
}

// A flood of idle connections takes no more than server.limits.max_connections
// of the gateway: the rest wait in the kernel's accept queue, the idle ones
// leave at read_header, and a normal client is served once its turn comes.
func TestLimits_ConnectionFloodIsBounded(t *testing.T) {
	const limit, flood = 50, 150
	e := newEnv(t, envOptions{ReadHeader: "1s", MaxConnections: strconv.Itoa(limit)})
	admin := "http://" + e.gw.Server.AdminAddr().String() + "/metrics"
	open := func() int {
		res, err := http.Get(admin)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, `gatehouse_connections_open{listeners="public"} `); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		t.Fatal("no gatehouse_connections_open in the metrics")
		return 0
	}
	conns := make([]net.Conn, 0, flood)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range flood {
		c, err := net.Dial("tcp", e.gw.Addr)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	peak := 0
	for range 10 {
		peak = max(peak, open())
		time.Sleep(50 * time.Millisecond)
	}
	if peak > limit || peak == 0 {
		t.Errorf("%d connections served at once under a flood of %d, limit %d", peak, flood, limit)
	}
	// A normal client, behind the flood in the accept queue.
	start := time.Now()
	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get("http://" + e.gw.Addr + "/normal")
	waited := time.Since(start)
	if err != nil {
		t.Fatalf("a normal client behind the flood: %v after %v", err, waited)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("a normal client behind the flood: %d", res.StatusCode)
	}
	// Every flood connection was closed by the gateway (read_header).
	closed := 0
	for _, fc := range conns {
		fc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := fc.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	if closed != flood {
		t.Errorf("%d of %d idle connections closed by the gateway", closed, flood)
	}
	after := open()
	for deadline := time.Now().Add(3 * time.Second); after != 0 && time.Now().Before(deadline); after = open() {
		time.Sleep(20 * time.Millisecond) // the last closes are being noticed
	}
	if after != 0 {
		t.Errorf("%d connections still counted open after the flood", after)
	}
	t.Logf("FIGURE connection flood: %d idle connections against max_connections %d: at most %d served at once; a normal client behind them answered 200 after %v; %d closed by read_header 1s; %d counted open after",
		flood, limit, peak, waited.Round(10*time.Millisecond), closed, after)
}
