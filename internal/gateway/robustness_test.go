package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testpki"
)

// rawExchange writes raw to the gateway, optionally half-closes, and
// returns every byte the gateway sends until it closes the connection.
func rawExchange(t *testing.T, h *harness, raw string, halfClose bool) string {
	t.Helper()
	c, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, raw)
	if halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// Threat: a client that half-closes its side after sending a request (or
// leaves) is told "200 OK" with an empty body although the backend never
// answered: Go's server sends an implicit 200 when a handler writes
// nothing. The gateway must drop the connection instead, and log 499.
// Under h1, which reads nothing while a request runs, the server's check
// for a client that closed its connection (h1.Server.ClientCloseCheck)
// is what cancels the request.
func TestProxy_ClientThatLeftGetsNoFabricatedResponse(t *testing.T) {
	servers(t, func(t *testing.T, serve func(*harness)) {
		for name, cfg := range withAndWithoutResponseTransform {
			t.Run(name, func(t *testing.T) { clientThatLeft(t, cfg, "GET /public/slow HTTP/1.1\r\nHost: x\r\n\r\n", serve) })
		}
	})
}

// A client that leaves in the middle of a streamed response has the
// backend's request cancelled (the backend sees its context end) and the
// access line says client_closed, not that the response was aborted for
// some other reason.
func TestProxy_ClientThatLeftMidResponse(t *testing.T) {
	for _, streaming := range []bool{false, true} {
		t.Run(fmt.Sprintf("backend still sending=%v", streaming), func(t *testing.T) { clientThatLeftMidResponse(t, streaming) })
	}
}

// clientThatLeftMidResponse: the backend sends one event, then waits
// (streaming false: the client's close is noticed by the server's check)
// or goes on sending every 5 ms (a write to the client fails first).
func clientThatLeftMidResponse(t *testing.T, streaming bool) {
	servers(t, func(t *testing.T, serve func(*harness)) {
		h := newHarness(t, baseConfig, nil)
		serve(h)
		release := make(chan struct{})
		defer close(release)
		backendDone := make(chan struct{})
		h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			for {
				select {
				case <-release:
					return
				case <-r.Context().Done():
					close(backendDone)
					return
				case <-time.After(5 * time.Millisecond):
					if streaming {
						io.WriteString(w, "data: more\n\n")
						w.(http.Flusher).Flush()
					}
				}
			}
		}
		c, err := net.Dial("tcp", h.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /public/events HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the stream: %v", err)
			}
			if strings.HasPrefix(line, "data: first") {
				break
			}
		}
		c.Close()
		select {
		case <-backendDone:
		case <-time.After(5 * time.Second):
			t.Fatal("the backend's request went on after the client left")
		}
		if logs := h.waitAccess(1); !strings.Contains(logs, `"denial":"client_closed"`) {
			t.Fatalf("the access line does not say client_closed:\n%s", logs)
		}
	})
}

// withAndWithoutResponseTransform is baseConfig, and baseConfig with a
// response-header transform on the public API (whose writer then sits
// over the gateway's).
var withAndWithoutResponseTransform = map[string]string{
	"plain": baseConfig,
	"response transform": strings.Replace(baseConfig, "  - name: public\n    path_prefix: /public\n",
		"  - name: public\n    path_prefix: /public\n    transforms: {response_headers: {set: {X-Frame-Options: DENY}}}\n", 1),
}

// clientThatLeft sends request and half-closes while the backend has not
// answered: the client must get nothing, and the access line say 499
// client_closed.
func clientThatLeft(t *testing.T, cfg, request string, serve func(*harness)) {
	h := newHarness(t, cfg, nil)
	serve(h)
	release := make(chan struct{})
	defer close(release)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	got := rawExchange(t, h, request, true)
	if got != "" {
		t.Fatalf("the gateway answered a request it could not serve:\n%q", got)
	}
	if logs := h.waitAccess(1); !strings.Contains(logs, `"status":499`) || !strings.Contains(logs, `"denial":"client_closed"`) {
		t.Fatalf("the access line is not a 499 client_closed:\n%s", logs)
	}
}

// Threat: a malformed chunked body is blamed on the backend (502), which
// hides the client's attack from the access log and from alerts on 4xx.
func TestProxy_MalformedChunkedBodyIsTheClients400(t *testing.T) {
	for name, cfg := range withAndWithoutResponseTransform {
		t.Run(name, func(t *testing.T) { malformedChunkedBody(t, cfg) })
	}
}

func malformedChunkedBody(t *testing.T, cfg string) {
	h := newHarness(t, cfg, nil)
	for _, body := range []string{"zz\r\nabc\r\n0\r\n\r\n", "-1\r\nabc\r\n0\r\n\r\n", "1\r\nabc\r\n0\r\n\r\n"} {
		got := rawExchange(t, h, "POST /public/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+body, false)
		res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if res.StatusCode != 400 {
			t.Errorf("%q: status %d, want 400", body, res.StatusCode)
		}
	}
	if !strings.Contains(h.logs.String(), `"denial":"bad_request_body"`) {
		t.Errorf("access log lacks denial bad_request_body")
	}
}

// Threat: CL.TE desynchronization with a proxy in front of the gateway.
// Go's server drops the Content-Length of a request that also has
// Transfer-Encoding, so the gateway cannot tell the two apart; RFC 9112
// §6.1 requires closing the connection after such a request, so the
// gateway closes it after every chunked HTTP/1.1 request.
func TestProxy_ChunkedRequestClosesTheConnection(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	got := rawExchange(t, h, "POST /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /public/second HTTP/1.1\r\nHost: x\r\n\r\n", false)
	if n := strings.Count(got, "HTTP/1.1 "); n != 1 {
		t.Fatalf("%d responses, want 1 and the connection closed:\n%s", n, got)
	}
	if !strings.Contains(got, "Connection: close") {
		t.Errorf("no Connection: close:\n%s", got)
	}
	// A request with a Content-Length only keeps the connection.
	got = rawExchange(t, h, "POST /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nxGET /public/second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false)
	if n := strings.Count(got, "HTTP/1.1 200"); n != 2 {
		t.Fatalf("%d responses to two pipelined requests:\n%s", n, got)
	}
}

// Every upstream failure has a reason in the access log.
func TestProxy_UpstreamFailureReasonReachesAccessLog(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	h.beSrv.Close()
	res := h.do("GET", "/public/x", nil, nil)
	res.Body.Close()
	if res.StatusCode != 502 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if !strings.Contains(h.logs.String(), `"denial":"upstream_error"`) {
		t.Fatalf("access log lacks denial upstream_error:\n%s", h.logs.String())
	}
}

// breakOffAfterTenBytes is a backend that promises 100 bytes of body,
// sends 10 and closes the connection.
func breakOffAfterTenBytes(w http.ResponseWriter, r *http.Request) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
	brw.Flush()
	conn.Close()
}

// A response that breaks off (the backend dies after its headers) makes
// the proxy abort the connection; the request still gets its access-log
// line, marked response_aborted, and the client sees a cut-off response,
// never a complete one.
func TestProxy_AbortedResponseIsLogged(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	h.backend.handler = breakOffAfterTenBytes
	got := rawExchange(t, h, "GET /public/broken HTTP/1.1\r\nHost: x\r\n\r\n", false)
	if strings.Contains(got, "only ten b") && strings.Count(got, "only ten b") == 1 {
		res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
		if err == nil {
			if _, err := io.ReadAll(res.Body); err == nil {
				t.Fatalf("the client got a complete response: %q", got)
			}
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(h.logs.String(), `"path":"/public/broken"`) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(h.logs.String(), `"denial":"response_aborted"`) {
		t.Fatalf("no access-log line for the aborted response:\n%s", h.logs.String())
	}
}

// A backend that sends its head and part of its body, then nothing, does
// not hold the request for good: after the backend's response_idle the
// response is cut off (the client never sees it complete), and the
// access line says why. Under both servers, and over both transports
// (plain HTTP through h1's, HTTPS through net/http's).
func TestProxy_ResponseIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	stall := func(release chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "part of it")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}
	check := func(t *testing.T, h *harness, path string) {
		t.Helper()
		start := time.Now()
		got := rawExchange(t, h, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n", false)
		took := time.Since(start)
		// What the client got, if anything (a server that buffered the
		// head and the start of the body sends nothing), must not be a
		// complete response.
		if took < idle || took > 4*time.Second {
			t.Errorf("the response was cut off after %v, want about %v", took, idle)
		}
		res, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
		if err == nil {
			if _, err := io.ReadAll(res.Body); err == nil {
				t.Fatalf("the client got a complete response: %q", got)
			}
		}
		logs := h.waitAccess(1)
		if !strings.Contains(logs, `"denial":"response_aborted"`) || !strings.Contains(logs, `"error":"reading the backend's response body: upstream response body idle timeout"`) {
			t.Fatalf("the access line does not say why the response broke off:\n%s", logs)
		}
	}
	servers(t, func(t *testing.T, serve func(*harness)) {
		release := make(chan struct{})
		defer close(release)
		cfg := strings.Replace(baseConfig, "timeouts: {response_header: 1s}", "timeouts: {response_header: 1s, response_idle: 200ms}", 1)
		h := newHarness(t, cfg, nil)
		serve(h)
		h.backend.handler = stall(release)
		check(t, h, "/public/stall")
	})
	t.Run("https", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		ca := testpki.NewCA(t, "internal CA")
		backend := httpsBackend(t, ca, stall(release))
		cfg := strings.Replace(httpsBackendConfig, "    tls: {ca_file", "    timeouts: {response_idle: 200ms}\n    tls: {ca_file", 1)
		h := newHarness(t, cfg, map[string]any{"Backend": backend.URL, "CA": ca.WriteFile(t, t.TempDir(), "ca")})
		check(t, h, "/x")
	})
}
