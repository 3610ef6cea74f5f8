package gateway_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestProxy_ForwardsVerifiedIdentityAndRequestID(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	res := h.do("GET", "/orders/42?q=1", map[string]string{
		"Authorization": "Bearer " + h.token(map[string]any{"groups": []string{"staff", "on,call"}}),
		"X-Request-ID":  "req-123",
	}, nil)
	if res.StatusCode != 200 {
		t.Fatalf("status %d: %s", res.StatusCode, readBody(t, res))
	}
	if got := res.Header.Get("X-Request-ID"); got != "req-123" {
		t.Errorf("response request ID %q", got)
	}
	if n := len(res.Header.Values("X-Request-ID")); n != 1 {
		t.Errorf("%d request ID headers in the response", n)
	}
	r := h.backend.last()
	for k, want := range map[string]string{
		"X-Gatehouse-Subject":    "alice",
		"X-Gatehouse-Issuer":     h.issSrv.URL,
		"X-Gatehouse-Groups":     "on%2Ccall,staff",
		"X-Gatehouse-Scopes":     "orders:read",
		"X-Gatehouse-Credential": "jwt",
		"X-Request-Id":           "req-123",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("backend %s = %q, want %q", k, got, want)
		}
	}
	if r.URL.RawQuery != "q=1" {
		t.Errorf("query %q", r.URL.RawQuery)
	}
	if r.Header.Get("Authorization") != "" {
		t.Error("the caller's bearer token reached the backend")
	}
	if tp := r.Header.Get("Traceparent"); len(tp) != 55 {
		t.Errorf("traceparent %q", tp)
	}
}

// Threat: a client forges the identity headers the gateway sets, or the
// forwarding headers a backend trusts, in any spelling a backend
// framework might fold into the same name.
func TestProxy_SpoofedIdentityAndForwardingHeadersNeverReachBackend(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	spoofed := []string{
		"X-Gatehouse-Subject", "x-gatehouse-groups", "X_Gatehouse_Roles", "X.Gatehouse.Scopes",
		"X-GATEHOUSE-CONSUMER", "x_gatehouse_credential", "X-Gatehouse-Anything",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Uri", "X_Forwarded_For",
		"X-Forwarded-Prefix", "Forwarded", "X-Real-IP", "X-Original-URL", "X-Rewrite-URL", "True-Client-IP",
	}
	req, _ := http.NewRequest("GET", h.srv.URL+"/orders/1", nil)
	req.Header.Set("Authorization", "Bearer "+h.token(nil))
	for _, k := range spoofed {
		req.Header[k] = []string{"evil"} // keep the exact spelling on the wire
	}
	// Connection may name a header; that must not remove the gateway's own.
	req.Header.Set("Connection", "X-Forwarded-For, X-Gatehouse-Subject")
	res, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	r := h.backend.last()
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, "evil") {
				t.Errorf("spoofed %s: %q reached the backend", k, v)
			}
		}
	}
	if got := r.Header.Get("X-Gatehouse-Subject"); got != "alice" {
		t.Errorf("subject %q", got)
	}
	if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want the peer only", got)
	}
}

// Threat: an anonymous route lets a client pretend to be someone by
// sending identity headers; there is no principal, so none may pass.
func TestProxy_AnonymousRouteStripsIdentityHeaders(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	res := h.do("GET", "/public/x", map[string]string{"X-Gatehouse-Subject": "admin", "X-Gatehouse-Groups": "admins"}, nil)
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	r := h.backend.last()
	if r.Header.Get("X-Gatehouse-Subject") != "" || r.Header.Get("X-Gatehouse-Groups") != "" {
		t.Fatalf("identity headers on an anonymous request: %v", r.Header)
	}
}

func TestProxy_TrustedProxyChain(t *testing.T) {
	h := newHarness(t, baseConfig, map[string]any{"Trusted": "[127.0.0.1/32, 10.0.0.0/8]"})
	res := h.do("GET", "/public/x", map[string]string{
		"X-Forwarded-For":   "203.0.113.9, 10.1.2.3",
		"X-Forwarded-Proto": "https",
		"X-Forwarded-Host":  "api.example.com",
	}, nil)
	res.Body.Close()
	r := h.backend.last()
	if got := r.Header.Get("X-Forwarded-For"); got != "203.0.113.9, 10.1.2.3, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", got)
	}
	if r.Header.Get("X-Forwarded-Proto") != "https" || r.Header.Get("X-Forwarded-Host") != "api.example.com" {
		t.Errorf("trusted proxy's proto/host not kept: %v", r.Header)
	}
	if logs := h.waitAccess(1); !strings.Contains(logs, `"client_ip":"203.0.113.9"`) {
		t.Errorf("access log does not name the client IP 203.0.113.9:\n%s", logs)
	}
}

func TestProxy_HopByHopHeadersRemoved(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	res := h.do("GET", "/public/x", map[string]string{
		"Connection":          "X-Secret-Hop",
		"X-Secret-Hop":        "1",
		"Keep-Alive":          "timeout=5",
		"Proxy-Authorization": "Basic Zm9vOmJhcg==",
		"Te":                  "gzip",
		"Upgrade":             "h2c",
	}, nil)
	res.Body.Close()
	r := h.backend.last()
	for _, k := range []string{"X-Secret-Hop", "Keep-Alive", "Proxy-Authorization", "Te", "Upgrade"} {
		if r.Header.Get(k) != "" {
			t.Errorf("hop-by-hop %s reached the backend", k)
		}
	}
}

func TestProxy_PassCredential(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	tok := h.token(nil)
	res := h.do("GET", "/pass/x", bearer(tok), nil)
	res.Body.Close()
	if got := h.backend.last().Header.Get("Authorization"); got != "Bearer "+tok {
		t.Fatalf("pass_credential: backend Authorization %q", got)
	}
	res = h.do("GET", "/orders/1", map[string]string{"X-API-Key": testAPIKey}, nil)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("api key: %d", res.StatusCode)
	}
	r := h.backend.last()
	if r.Header.Get("X-API-Key") != "" {
		t.Error("the API key reached the backend")
	}
	if r.Header.Get("X-Gatehouse-Consumer") != "partner" || r.Header.Get("X-Gatehouse-Credential") != "api_key" {
		t.Errorf("consumer headers: %v", r.Header)
	}
}

// What was authorized is exactly what is forwarded: the backend receives
// the normalized path, canonically encoded.
func TestProxy_ForwardsTheNormalizedPath(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	for _, tc := range []struct{ sent, want string }{
		{"/public/a/../b", "/public/b"},
		{"/public//a///b", "/public/a/b"},
		{"/public/%61%62", "/public/ab"},
		{"/public/a%20b", "/public/a%20b"},
		{"/orders/../public/x", "/public/x"},
	} {
		conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tc.sent)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		conn.Close()
		if res.StatusCode != 200 {
			t.Errorf("%s: status %d", tc.sent, res.StatusCode)
			continue
		}
		if got := h.backend.last().URL.EscapedPath(); got != tc.want {
			t.Errorf("%s: backend saw %s, want %s", tc.sent, got, tc.want)
		}
	}
}

func TestProxy_BodyLimit(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	tok := h.token(nil)
	before := h.backend.count()
	// Declared too large: refused before the backend is contacted.
	res := h.do("POST", "/orders/", bearer(tok), strings.NewReader(strings.Repeat("x", 2048)))
	if res.StatusCode != 413 {
		t.Fatalf("declared 2 KiB body: status %d, want 413", res.StatusCode)
	}
	if h.backend.count() != before {
		t.Fatal("the backend was reached")
	}
	// Chunked, too large: the gateway stops reading at the limit and answers 413.
	req, _ := http.NewRequest("POST", h.srv.URL+"/orders/", io.MultiReader(strings.NewReader(strings.Repeat("y", 4096))))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 413 {
		t.Fatalf("chunked 4 KiB body: status %d, want 413", res.StatusCode)
	}
	h.backend.mu.Lock()
	for _, b := range h.backend.bodies {
		if len(b) > 1024 {
			t.Errorf("backend received a %d-byte body", len(b))
		}
	}
	h.backend.mu.Unlock()
	// Within the limit: forwarded.
	res = h.do("POST", "/orders/", bearer(tok), strings.NewReader("small"))
	if res.StatusCode != 200 {
		t.Fatalf("small body: %d", res.StatusCode)
	}
}

func TestProxy_UpstreamErrors(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/public/slow" {
			time.Sleep(1500 * time.Millisecond) // over the 1s response_header timeout
		}
	}
	res := h.do("GET", "/public/slow", nil, nil)
	if res.StatusCode != 504 || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("slow backend: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	h.beSrv.Close()
	res = h.do("GET", "/public/x", nil, nil)
	body := readBody(t, res)
	if res.StatusCode != 502 {
		t.Fatalf("backend down: %d", res.StatusCode)
	}
	if strings.Contains(body, "connect") || strings.Contains(body, "127.0.0.1") {
		t.Errorf("internal cause leaked to the client: %s", body)
	}
}

func TestProxy_StreamsResponses(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	release := make(chan struct{})
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		io.WriteString(w, "data: second\n\n")
	}
	res := h.do("GET", "/public/events", nil, nil)
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event not streamed before the response ended: %q %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "second") {
		t.Fatalf("rest %q", rest)
	}
}

// switchProtocols is a backend's side of a WebSocket upgrade: it takes
// the connection over and sends a 101, then first (it may be empty).
func switchProtocols(w http.ResponseWriter, first string) (net.Conn, *bufio.ReadWriter, bool) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, false
	}
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n" + first)
	brw.Flush()
	return conn, brw, true
}

// upgradeThrough opens a connection to the gateway, asks for a WebSocket
// upgrade of /public/ws (with the extra fields given, each ending in
// CRLF), and returns the connection after its 101, with a deadline of 10 s.
func upgradeThrough(t *testing.T, h *harness, extra string) (*net.TCPConn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /public/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+extra+"\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	// One Connection field, Upgrade: a "close" before it (there was one)
	// makes some WebSocket clients refuse the switch.
	if c := res.Header.Values("Connection"); len(c) != 1 || c[0] != "Upgrade" || res.Header.Get("Content-Length") != "" {
		t.Fatalf("the 101's Connection %q, Content-Length %q", c, res.Header.Get("Content-Length"))
	}
	return conn.(*net.TCPConn), br
}

func TestProxy_WebSocketUpgrade(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, brw, ok := switchProtocols(w, "")
		if !ok {
			return
		}
		defer conn.Close()
		// Echo bytes until the client closes.
		buf := make([]byte, 64)
		for {
			n, err := brw.Read(buf)
			if err != nil {
				return
			}
			conn.Write(buf[:n])
		}
	}
	conn, br := upgradeThrough(t, h, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	conn.Write([]byte("ping"))
	got := make([]byte, 4)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo %q %v", got, err)
	}
}

func TestProxy_ErrorsAreProblemJSONWithRequestID(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/nowhere", 404},
		{"PUT", "/orders/1", 405},
		{"GET", "/orders/1", 401},
		{"GET", "/public/%2e%2e/%2e%2e/etc", 400},
	} {
		res := h.do(tc.method, tc.path, nil, nil)
		if res.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, res.StatusCode, tc.status)
			continue
		}
		var p map[string]any
		if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
			t.Errorf("%s %s: body is not JSON: %v", tc.method, tc.path, err)
			continue
		}
		if res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("content type %q", res.Header.Get("Content-Type"))
		}
		id := res.Header.Get("X-Request-ID")
		if id == "" || p["request_id"] != id || int(p["status"].(float64)) != tc.status {
			t.Errorf("%s %s: problem %v, header id %q", tc.method, tc.path, p, id)
		}
	}
	if res := h.do("PUT", "/orders/1", nil, nil); res.Header.Get("Allow") != "DELETE, GET, HEAD" {
		t.Errorf("Allow %q", res.Header.Get("Allow"))
	}
}

func TestProxy_MalformedRequestIDIsReplaced(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	res := h.do("GET", "/public/x", map[string]string{"X-Request-ID": "bad id with spaces", "Traceparent": "00-zz-bad"}, nil)
	res.Body.Close()
	id := res.Header.Get("X-Request-ID")
	if id == "bad id with spaces" || len(id) != 32 {
		t.Fatalf("request id %q", id)
	}
	r := h.backend.last()
	if r.Header.Get("X-Request-Id") != id {
		t.Errorf("backend request ID %q, response %q", r.Header.Get("X-Request-Id"), id)
	}
	if tp := r.Header.Get("Traceparent"); tp == "00-zz-bad" || len(tp) != 55 {
		t.Errorf("traceparent %q", tp)
	}
	good := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	res = h.do("GET", "/public/x", map[string]string{"Traceparent": good}, nil)
	res.Body.Close()
	if h.backend.last().Header.Get("Traceparent") != good {
		t.Errorf("well-formed traceparent not forwarded")
	}
}

func TestAccessLogNeverHoldsCredentials(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	tok := h.token(nil)
	h.do("GET", "/orders/1?api_key=sekrit-in-query", bearer(tok), nil).Body.Close()
	h.do("GET", "/orders/1", map[string]string{"X-API-Key": testAPIKey}, nil).Body.Close()
	h.do("GET", "/orders/1", map[string]string{"X-API-Key": "ghk_wrong-key-value"}, nil).Body.Close()
	logs := h.waitAccess(3)
	for _, secret := range []string{tok, tok[len(tok)-20:], testAPIKey, "ghk_wrong-key-value", "sekrit-in-query"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains a credential (%.12s...)", secret)
		}
	}
	if !strings.Contains(logs, `"denial":"invalid_api_key"`) || !strings.Contains(logs, `"subject":"alice"`) {
		t.Errorf("access log lacks the expected fields:\n%s", logs)
	}
}

// The gateway's fields reach the backend once each, replacing what the
// client sent under the same names, although they are written by the
// transport after the client's (h1.Fields) rather than set in a map.
func TestProxy_GatewayFieldsReplaceTheClientsExactlyOnce(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	for _, tc := range []struct {
		name, id string
		keepID   bool
	}{
		{"a malformed request ID is replaced", "bad id!", false},
		{"a well-formed one is kept", "client-req-7", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.do("GET", "/orders/42", map[string]string{
				"Authorization":       "Bearer " + h.token(map[string]any{"groups": []string{"staff"}}),
				"X-Request-ID":        tc.id,
				"Traceparent":         "00-bad",
				"X-Forwarded-For":     "203.0.113.9",
				"X-Forwarded-Proto":   "https",
				"X-Gatehouse-Subject": "mallory",
			}, nil)
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %s", res.StatusCode, readBody(t, res))
			}
			r := h.backend.last()
			for _, k := range []string{"X-Request-Id", "Traceparent", "X-Forwarded-For", "X-Forwarded-Host",
				"X-Forwarded-Proto", "X-Gatehouse-Subject", "X-Gatehouse-Issuer", "X-Gatehouse-Groups", "X-Gatehouse-Credential"} {
				if n := len(r.Header.Values(k)); n != 1 {
					t.Errorf("backend got %d %s fields (%q), want 1", n, k, r.Header.Values(k))
				}
			}
			if got := r.Header.Get("X-Request-Id"); (got == tc.id) != tc.keepID || got != res.Header.Get("X-Request-Id") {
				t.Errorf("backend X-Request-Id %q, response's %q (client's %q, kept? want %v)", got, res.Header.Get("X-Request-Id"), tc.id, tc.keepID)
			}
			if got := r.Header.Get("Traceparent"); got == "00-bad" || len(got) != 55 {
				t.Errorf("backend traceparent %q", got)
			}
			if got := r.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
				t.Errorf("backend X-Forwarded-For %q, want the peer only (untrusted)", got)
			}
			if got := r.Header.Get("X-Forwarded-Proto"); got != "http" {
				t.Errorf("backend X-Forwarded-Proto %q", got)
			}
			if got := r.Header.Get("X-Gatehouse-Subject"); got != "alice" {
				t.Errorf("backend subject %q", got)
			}
			if ua := r.Header.Values("User-Agent"); len(ua) != 1 || ua[0] != "Go-http-client/1.1" {
				t.Errorf("backend User-Agent %q, want the client's, once", ua)
			}
		})
	}
}

// An upgraded connection (WebSocket) is closed once nothing went either
// way for the backend's tunnel_idle: traffic in either direction alone
// keeps it open for longer than that, and the access line says why it
// ended. (Under net/http's server, which h1 hands upgrades to.)
func TestProxy_TunnelIdleTimeout(t *testing.T) {
	const idle = 250 * time.Millisecond
	cfg := strings.Replace(baseConfig, "timeouts: {response_header: 1s}", "timeouts: {response_header: 1s, tunnel_idle: 250ms}", 1)
	h := newHarness(t, cfg, nil)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		conn, brw, ok := switchProtocols(w, "")
		if !ok {
			return
		}
		defer conn.Close()
		buf := make([]byte, 64)
		for {
			n, err := brw.Read(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) == "push" {
				// The backend alone speaks, for longer than idle.
				for range 5 {
					time.Sleep(idle / 3)
					conn.Write([]byte("tick"))
				}
				continue
			}
			conn.Write(buf[:n])
		}
	}
	conn, br := upgradeThrough(t, h, "")
	got := make([]byte, 4)
	// Both ways, for longer than idle.
	for range 5 {
		time.Sleep(idle / 3)
		conn.Write([]byte("ping"))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != "ping" {
			t.Fatalf("echo %q %v", got, err)
		}
	}
	// The backend alone, for longer than idle.
	conn.Write([]byte("push"))
	for range 5 {
		if _, err := io.ReadFull(br, got); err != nil || string(got) != "tick" {
			t.Fatalf("push %q %v", got, err)
		}
	}
	// Then silence: the gateway closes the connection.
	start := time.Now()
	if n, err := br.Read(got); err != io.EOF {
		t.Fatalf("read %q %v after the silence, want EOF", got[:n], err)
	}
	if took := time.Since(start); took < idle/2 || took > 5*time.Second {
		t.Errorf("closed %v after the last byte, want about %v", took, idle)
	}
	logs := h.waitAccess(1)
	if !strings.Contains(logs, `"status":101`) || !strings.Contains(logs, "(tunnel_idle)") {
		t.Errorf("the access line does not say why the tunnel ended:\n%s", logs)
	}
}

// A client that half-closes after an upgrade request, while the backend
// has not answered, gets nothing, as for any other request (the upgrade
// goes through the tunnel's writer, which the error handler sees past).
// Under net/http's server only: h1 hands upgrades over to it.
func TestProxy_UpgradeClientThatLeftGetsNoFabricatedResponse(t *testing.T) {
	clientThatLeft(t, baseConfig, "GET /public/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", func(*harness) {})
}

// A side of an upgraded connection that half-closes passes its end on to
// the other side, which can still send: with the tunnel's watchdog as
// without it.
func TestProxy_TunnelHalfCloseIsPassedOn(t *testing.T) {
	for _, idle := range []string{"0s", "1h"} {
		t.Run("tunnel_idle "+idle, func(t *testing.T) {
			cfg := strings.Replace(baseConfig, "timeouts: {response_header: 1s}", "timeouts: {response_header: 1s, tunnel_idle: "+idle+"}", 1)
			h := newHarness(t, cfg, nil)
			received := make(chan string, 1)
			h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
				conn, brw, ok := switchProtocols(w, "last words")
				if !ok {
					return
				}
				defer conn.Close()
				conn.(*net.TCPConn).CloseWrite()
				b, _ := io.ReadAll(brw)
				received <- string(b)
			}
			conn, br := upgradeThrough(t, h, "")
			if b, err := io.ReadAll(br); string(b) != "last words" || err != nil {
				t.Fatalf("the client read %q, %v; want the backend's last words, then its end", b, err)
			}
			io.WriteString(conn, "a reply")
			conn.CloseWrite()
			select {
			case got := <-received:
				if got != "a reply" {
					t.Errorf("after its half-close the backend received %q, want %q", got, "a reply")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the backend never saw the client's end")
			}
		})
	}
}

// An upgrade to another protocol than WebSocket is not offered to the
// backend: an h2c upgrade (whose streams would pass authentication, the
// access log and the rate limits) goes on as a plain request, without
// Upgrade and HTTP2-Settings, and is answered as one; an Upgrade that
// lists websocket among others is not tunnelled either.
func TestProxy_OnlyWebSocketUpgradesReachTheBackend(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	var seen atomic.Value
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		seen.Store(fmt.Sprintf("upgrade=%q settings=%q connection=%q", r.Header.Get("Upgrade"), r.Header.Get("Http2-Settings"), r.Header.Values("Connection")))
		if r.Header.Get("Upgrade") != "" {
			if conn, _, ok := switchProtocols(w, ""); ok {
				conn.Close()
			}
			return
		}
		io.WriteString(w, "plain")
	}
	for _, offer := range []string{
		"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n",
		"Upgrade: websocket, h2c\r\nConnection: Upgrade\r\n",
		"Upgrade: TLS/1.2\r\nConnection: Upgrade\r\n",
	} {
		conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /public/status HTTP/1.1\r\nHost: x\r\n%s\r\n", offer)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		conn.Close()
		if res.StatusCode != 200 || string(body) != "plain" {
			t.Fatalf("offer %q: %d %q; want the plain answer", offer, res.StatusCode, body)
		}
		if got := seen.Load().(string); got != `upgrade="" settings="" connection=[]` {
			t.Fatalf("offer %q reached the backend as %s", offer, got)
		}
	}
}
