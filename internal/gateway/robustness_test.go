package gateway_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
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
func TestProxy_ClientThatLeftGetsNoFabricatedResponse(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	release := make(chan struct{})
	defer close(release)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	got := rawExchange(t, h, "GET /public/slow HTTP/1.1\r\nHost: x\r\n\r\n", true)
	if got != "" {
		t.Fatalf("the gateway answered a request it could not serve:\n%q", got)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(h.logs.String(), `"denial":"client_closed"`) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(h.logs.String(), `"status":499`) {
		t.Fatalf("access log lacks status 499 client_closed:\n%s", h.logs.String())
	}
}

// Threat: a malformed chunked body is blamed on the backend (502), which
// hides the client's attack from the access log and from alerts on 4xx.
func TestProxy_MalformedChunkedBodyIsTheClients400(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
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
