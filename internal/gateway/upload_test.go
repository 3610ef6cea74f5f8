package gateway_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/observe"
	"github.com/gatehouse-dev/gatehouse/internal/testpki"
	"github.com/gatehouse-dev/gatehouse/internal/upstream"
)

// uploadConfig is a backend whose every failure counts: two timeouts in
// a row eject an instance, three requests are enough for the breaker to
// judge. The key sends every request with the same X-Key to the same
// instance. {{.Instances}}, {{.Backend}} (more backend keys) and
// {{.Timeouts}} are filled in.
const uploadConfig = `
backends:
  - name: up
    instances: [{{.Instances}}]
    load_balancing: {algorithm: consistent_hash, hash_key: "header:X-Key"}
    outlier_detection: {consecutive_5xx: 2, base_ejection: 30s, max_ejected_percent: 100}
    circuit_breaker: {failure_ratio: 0.5, minimum_requests: 3, window: 10s, open_duration: 30s}
    {{.Backend}}
apis:
  - name: up
    backend: up
    auth: {anonymous: true}
    max_body: 1GiB
    timeouts: {{.Timeouts}}
    operations:
      - {name: upload, method: POST, path: /upload}
      - {name: get, method: GET, path: "/{id}"}
`

// uploadDeadlines are the two deadlines a slow body may outlast.
var uploadDeadlines = []struct{ name, timeouts string }{
	{"request", "{request: 300ms}"},
	{"upstream_attempt", "{request: 10s, upstream_attempt: 300ms}"},
}

// newUploadHarness serves uploadConfig over urls, with statistics for
// the suggestions.
func newUploadHarness(t *testing.T, urls []string, timeouts, backendExtra string, vars map[string]any) *harness {
	t.Helper()
	list := make([]string, len(urls))
	for i, u := range urls {
		list[i] = `{url: "` + u + `"}`
	}
	v := map[string]any{"Instances": strings.Join(list, ", "), "Timeouts": timeouts, "Backend": backendExtra}
	for k, x := range vars {
		v[k] = x
	}
	return newHarnessWith(t, uploadConfig, v, func(rt *gateway.Runtime) { rt.Stats = observe.NewStats(nil) })
}

// slowUpload is a client that sends a POST's head at once, then its
// Content-Length body of n bytes one byte per gap (the pace is the
// test's subject: a ticker, on loopback), and reads the response while
// it writes. It returns the response, its body, and whether the gateway
// closed the connection after it.
func slowUpload(t *testing.T, h *harness, key string, n int, gap time.Duration) (*http.Response, string, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	head := "POST /upload HTTP/1.1\r\nHost: gw\r\nX-Key: " + key + "\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(n) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	wg.Go(func() {
		tick := time.NewTicker(gap)
		defer tick.Stop()
		for range n {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte{'x'}); err != nil {
				return // the gateway answered and closed
			}
		}
	})
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	// Closed: the next read ends (EOF, or a reset when the gateway closed
	// with bytes of the body still unread) instead of timing out.
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = br.ReadByte()
	var ne net.Error
	closed := err != nil && !(errors.As(err, &ne) && ne.Timeout())
	return res, string(body), closed
}

// ownerOf returns the body of a GET with key: which instance the key goes
// to ("from host:port").
func ownerOf(t *testing.T, h *harness, key string) string {
	t.Helper()
	res := h.do("GET", "/1", map[string]string{"X-Key": key}, nil)
	body := readBody(t, res)
	if res.StatusCode != 200 {
		t.Fatalf("GET with key %s: %d %s", key, res.StatusCode, body)
	}
	return body
}

// checkNotTheBackends checks that the instance at addr and its backend
// took none of the uploads' failures: not ejected, the breaker closed,
// no timeout in the metrics or the statistics, and a GET with key gets
// 200 from the same instance as before.
func checkNotTheBackends(t *testing.T, h *harness, id, owner, key string) {
	t.Helper()
	p := h.pool("up")
	if s, ok := instanceStatus(p, id); !ok || !s.Eligible() {
		t.Errorf("instance %s after the slow uploads: %+v, want eligible (not ejected)", id, s)
	}
	if st := p.Breaker().State(); st != upstream.BreakerClosed {
		t.Errorf("breaker %s after the slow uploads, want closed", st)
	}
	for _, o := range []string{"timeout", "status_5xx", "connect_error", "error"} {
		if v := counterValue(t, h, "gatehouse_upstream_attempts_total", map[string]string{"backend": "up", "outcome": o}); v != 0 {
			t.Errorf("attempts with outcome %s: %v, want 0", o, v)
		}
	}
	if v := counterValue(t, h, "gatehouse_upstream_errors_total", map[string]string{"backend": "up", "reason": "upstream_timeout"}); v != 0 {
		t.Errorf("upstream_timeout errors: %v, want 0", v)
	}
	for _, op := range h.gw.Snapshot().AdvisorInput().Operations {
		if op.Stats.TimedOut != 0 {
			t.Errorf("%s's statistics count %d timeouts, want 0", op.Operation, op.Stats.TimedOut)
		}
	}
	if got := ownerOf(t, h, key); got != owner {
		t.Errorf("a GET after the slow uploads answered %q, want %q (its instance before them)", got, owner)
	}
}

// The defect: clients that send their body slowly were charged to the
// backend. A deadline that passes while the gateway still waits for the
// client's body is the client's: 408 request_body_timeout, the
// connection closed after it, no retry, nothing against the instance
// (no ejection) or the backend (the breaker stays closed, no timeout in
// the metrics or in the suggestions' statistics).
func TestUpload_SlowBodyIsTheClientsTimeoutNotTheBackends(t *testing.T) {
	for _, dl := range uploadDeadlines {
		t.Run(dl.name, func(t *testing.T) {
			servers(t, func(t *testing.T, serve func(*harness)) {
				var posts atomic.Int64
				handler := func(w http.ResponseWriter, r *http.Request) {
					if r.Method == "POST" {
						posts.Add(1)
						io.Copy(io.Discard, r.Body)
					}
					io.WriteString(w, "from "+r.Host)
				}
				var urls []string
				var ids []string
				for range 4 {
					in := startInstance(t, handler)
					urls, ids = append(urls, in.URL()), append(ids, in.ID())
				}
				h := newUploadHarness(t, urls, dl.timeouts, "", nil)
				serve(h)
				const key = "k1"
				owner := ownerOf(t, h, key)
				id := "http://" + strings.TrimPrefix(owner, "from ")
				if !strings.Contains(strings.Join(ids, " "), id) {
					t.Fatalf("owner %q is none of %v", owner, ids)
				}

				// Three uploads in parallel, each 16 bytes at one byte per
				// 40ms: 640ms, past the 300ms deadline. Before the fix each
				// was a backend timeout: the instance ejected at the
				// second, the breaker opened at the third.
				const uploads = 3
				var wg sync.WaitGroup
				errs := make(chan string, uploads)
				for range uploads {
					wg.Go(func() {
						res, body, closed := slowUpload(t, h, key, 16, 40*time.Millisecond)
						switch {
						case res.StatusCode != http.StatusRequestTimeout:
							errs <- "status " + res.Status + ": " + body
						case res.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, `/request-timeout"`):
							errs <- "408 body " + body
						case !closed:
							errs <- "the connection stayed open after the 408"
						}
					})
				}
				wg.Wait()
				close(errs)
				for e := range errs {
					t.Error(e)
				}
				if n := posts.Load(); n != 0 {
					t.Errorf("the instances got %d uploads, want 0 (none was complete in time)", n)
				}
				var got408 int
				for _, line := range h.accessLines(1 + uploads) {
					if line["status"] == 408.0 {
						got408++
						if line["denial"] != "request_body_timeout" || line["attempts"] != 1.0 {
							t.Errorf("408 access line %v", line)
						}
					}
				}
				if got408 != uploads {
					t.Errorf("%d access lines with 408, want %d", got408, uploads)
				}
				if v := counterValue(t, h, "gatehouse_upstream_attempts_total", map[string]string{"backend": "up", "outcome": "body_timeout"}); v != uploads {
					t.Errorf("body_timeout attempts %v, want %d", v, uploads)
				}
				checkNotTheBackends(t, h, id, owner, key)
			})
		})
	}
}

// The same through net/http's transport (an https:// instance, over
// HTTP/1.1 and HTTP/2), which writes the body in a goroutine of its own
// (over HTTP/2 it is cut off by the deadline while it waits for the
// client). The connection closes after the 408 without the rest of the
// body being read first (net/http's server would read up to 256 KiB of
// it, at the client's pace).
func TestUpload_SlowBodyToAnHTTPSBackendIsTheClientsTimeout(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		for _, dl := range uploadDeadlines {
			t.Run(proto+"/"+dl.name, func(t *testing.T) {
				servers(t, func(t *testing.T, serve func(*harness)) { testSlowBodyToHTTPS(t, proto, dl.timeouts, serve) })
			})
		}
	}
}

func testSlowBodyToHTTPS(t *testing.T, proto, timeouts string, serve func(*harness)) {
	ca := testpki.NewCA(t, "upload CA")
	var posts atomic.Int64
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			if _, err := io.Copy(io.Discard, r.Body); err == nil {
				posts.Add(1)
			}
		}
		io.WriteString(w, "from "+r.Host+" "+r.Proto)
	}))
	be.TLS = tlsConfig(ca.Server(t, "127.0.0.1"))
	be.EnableHTTP2 = proto == "HTTP/2.0"
	be.StartTLS()
	t.Cleanup(be.Close)
	h := newUploadHarness(t, []string{be.URL}, timeouts, `tls: {ca_file: "`+ca.WriteFile(t, t.TempDir(), "ca")+`"}`, nil)
	serve(h)
	const key = "k1"
	owner := ownerOf(t, h, key)
	if !strings.HasSuffix(owner, proto) {
		t.Fatalf("the backend answered %q, want it over %s", owner, proto)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			start := time.Now()
			// 40 bytes at one per 40ms: 1.6s; the deadline is 300ms.
			res, body, closed := slowUpload(t, h, key, 40, 40*time.Millisecond)
			if res.StatusCode != http.StatusRequestTimeout || !closed {
				t.Errorf("status %d (closed %v): %s", res.StatusCode, closed, body)
				return
			}
			// The answer and the close both: the server does not read
			// the rest of the body first.
			if d := time.Since(start); d > 1200*time.Millisecond {
				t.Errorf("408 and close after %s: want them at the deadline, not at the end of the body", d)
			}
		})
	}
	wg.Wait()
	if n := posts.Load(); n != 0 {
		t.Errorf("the instance got %d complete uploads, want 0", n)
	}
	checkNotTheBackends(t, h, be.URL, owner, key)
}

// A client that leaves in the middle of its body is not the backend's
// failure either.
func TestUpload_ClientLeavingMidBodyIsNotTheBackends(t *testing.T) {
	servers(t, func(t *testing.T, serve func(*harness)) {
		in := startInstance(t, nil)
		h := newUploadHarness(t, []string{in.URL()}, "{request: 10s}", "", nil)
		serve(h)
		const key = "k1"
		owner := ownerOf(t, h, key)
		for range 3 {
			conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: gw\r\nX-Key: "+key+"\r\nContent-Length: 100\r\n\r\nsome of it")
			// Gone once the gateway has the request in hand (its
			// in-flight gauge says so), before the rest of its body.
			waitFor(t, 5*time.Second, "the upload to reach the proxy", func() bool {
				return gaugeValue(t, h, "gatehouse_requests_in_flight", nil) == 1
			})
			conn.Close()
		}
		// net/http's server notices the close first (499 client_closed);
		// h1's, the body that ends early (400 bad_request_body).
		for _, line := range h.accessLines(4) {
			if s := line["status"]; line["method"] == "POST" && s != 499.0 && s != 400.0 {
				t.Errorf("access line %v, want 499 client_closed or 400 bad_request_body", line)
			}
			if ms, _ := line["upstream_ms"].(float64); line["method"] == "POST" && ms != 0 {
				t.Errorf("access line %v: the time waiting for the body counted as the backend's", line)
			}
		}
		// Nor is the client that left while sending one that gave up
		// waiting for the backend, in the suggestions' statistics.
		for _, op := range h.gw.Snapshot().AdvisorInput().Operations {
			if op.Stats.Abandoned != 0 {
				t.Errorf("%s's statistics count %d requests given up, want 0", op.Operation, op.Stats.Abandoned)
			}
		}
		if m := metric(t, h, "gatehouse_upstream_duration_seconds", map[string]string{"backend": "up"}); m == nil || m.GetHistogram().GetSampleCount() != 1 {
			t.Errorf("the backend's latency histogram: %v, want the GET's attempt alone", m.GetHistogram())
		}
		checkNotTheBackends(t, h, in.ID(), owner, key)
	})
}

// A backend that does not read a large body makes the gateway wait on
// its writes, not on the client: that deadline is still the backend's
// (504 upstream_timeout, counted against the instance).
func TestUpload_BackendThatDoesNotReadTheBodyStillTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var accepted []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range accepted {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c) // never read
			mu.Unlock()
		}
	}()
	h := newUploadHarness(t, []string{"http://" + ln.Addr().String()}, "{request: 300ms}", "", nil)
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	const size = 256 << 20 // far more than the sockets between them hold
	io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
	var wg sync.WaitGroup
	defer wg.Wait()
	defer conn.Close()
	wg.Go(func() {
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
		}
	})
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", res.StatusCode)
	}
	if v := counterValue(t, h, "gatehouse_upstream_attempts_total", map[string]string{"backend": "up", "outcome": "timeout"}); v != 1 {
		t.Errorf("timeout attempts %v, want 1", v)
	}
	if line := h.accessLines(1)[0]; line["denial"] != "upstream_timeout" {
		t.Errorf("access line %v", line)
	}
}

// The defect: a client that sent part of its body and then nothing more
// held the attempt, its backend connection and the backend's concurrency
// slot until the server's read timeout (none here; 60s by default). The
// attempt's deadline now bounds the reading of the body too: 408
// request_body_timeout at that deadline, with the client still
// connected, and the slot free for the next request.
func TestUpload_StalledBodyEndsAtTheAttemptsDeadline(t *testing.T) {
	for _, dl := range uploadDeadlines {
		t.Run(dl.name, func(t *testing.T) {
			servers(t, func(t *testing.T, serve func(*harness)) {
				var posts atomic.Int64
				in := startInstance(t, func(w http.ResponseWriter, r *http.Request) {
					if r.Method == "POST" {
						posts.Add(1)
						io.Copy(io.Discard, r.Body)
					}
					io.WriteString(w, "ok")
				})
				h := newUploadHarness(t, []string{in.URL()}, dl.timeouts, "max_concurrent_requests: 1", nil)
				serve(h)
				conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				// The client waits far longer than the deadline: a 408
				// must come from the gateway, not from its giving up.
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\nten bytes.")
				br := bufio.NewReader(conn)
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("no response to the stalled upload: %v", err)
				}
				body, _ := io.ReadAll(res.Body)
				if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `/request-timeout"`) {
					t.Fatalf("stalled upload: %s %s, want 408 request-timeout", res.Status, body)
				}
				if n := posts.Load(); n != 0 {
					t.Errorf("the instance got %d complete uploads, want 0", n)
				}
				// The slot is free: a GET gets through the limit of one.
				if res := h.do("GET", "/1", nil, nil); res.StatusCode != 200 {
					t.Errorf("GET after the 408: %d %s, want 200", res.StatusCode, readBody(t, res))
				} else {
					res.Body.Close()
				}
				line := h.accessLines(2)[0]
				if line["status"] != 408.0 || line["denial"] != "request_body_timeout" {
					t.Errorf("access line %v, want 408 request_body_timeout", line)
				}
				// The wait was the client's: not the backend's latency.
				if ms, _ := line["upstream_ms"].(float64); ms != 0 {
					t.Errorf("the 408's upstream_ms is %v, want 0 (the time was the client's)", ms)
				}
				if m := metric(t, h, "gatehouse_upstream_duration_seconds", map[string]string{"backend": "up"}); m == nil || m.GetHistogram().GetSampleCount() != 1 {
					t.Errorf("the backend's latency histogram: %v, want the GET's attempt alone", m.GetHistogram())
				}
				checkCounter(t, h, "body_timeout", 1)
				checkCounter(t, h, "timeout", 0)
			})
		})
	}
}

// The deadline set for the body's reading does not outlive the body: an
// upload whose response streams past the attempt's deadline gets all of
// it (Go's server watches for the client leaving with a read that the
// deadline would have ended, cancelling the request mid-response).
func TestUpload_ResponseStreamsPastTheAttemptsDeadline(t *testing.T) {
	servers(t, func(t *testing.T, serve func(*harness)) {
		in := startInstance(t, func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "first part, ")
			w.(http.Flusher).Flush()
			time.Sleep(600 * time.Millisecond) // twice the attempt's deadline
			io.WriteString(w, "last part")
		})
		h := newUploadHarness(t, []string{in.URL()}, "{request: 10s, upstream_attempt: 300ms}", "", nil)
		serve(h)
		res := h.do("POST", "/upload", map[string]string{"Content-Type": "text/plain"}, strings.NewReader("a whole body"))
		body := readBody(t, res)
		if res.StatusCode != 200 || body != "first part, last part" {
			t.Fatalf("%d %q, want 200 with both parts", res.StatusCode, body)
		}
		if line := h.accessLines(1)[0]; line["status"] != 200.0 || line["denial"] != nil {
			t.Errorf("access line %v", line)
		}
		checkCounter(t, h, "response", 1)
	})
}

// checkCounter checks the backend's attempts with outcome.
func checkCounter(t *testing.T, h *harness, outcome string, want float64) {
	t.Helper()
	if v := counterValue(t, h, "gatehouse_upstream_attempts_total", map[string]string{"backend": "up", "outcome": outcome}); v != want {
		t.Errorf("attempts with outcome %s: %v, want %v", outcome, v, want)
	}
}
