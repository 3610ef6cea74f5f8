package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/observe"
)

// The forwarding step: what it must do that httputil.ReverseProxy did.

// rawRequest sends raw on a new connection to the gateway and returns the
// response, its body read.
func rawRequest(t *testing.T, h *harness, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func TestForward_HopByHopFieldsRemovedFromTheRequest(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	res, _ := rawRequest(t, h, "GET /public/x HTTP/1.1\r\nHost: x\r\n"+
		"Connection: x-hop-a, keep-alive\r\nConnection: X-HOP-B\r\n"+
		"X-Hop-A: 1\r\nX-Hop-B: 2\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"+
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\nTe: gzip\r\nTrailer: X-Late\r\nUpgrade: h2c\r\n"+
		"X-End-To-End: kept\r\nX-Multi: one\r\nX-Multi: two\r\nContent-Length: 0\r\n\r\n")
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	r := h.backend.last()
	for _, k := range []string{"X-Hop-A", "X-Hop-B", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer", "Upgrade"} {
		if v, ok := r.Header[k]; ok {
			t.Errorf("hop-by-hop %s: %q reached the backend", k, v)
		}
	}
	if c := r.Header.Get("Connection"); c != "" && !strings.EqualFold(c, "keep-alive") && !strings.EqualFold(c, "close") {
		t.Errorf("the client's Connection reached the backend: %q", c)
	}
	if got := r.Header.Get("X-End-To-End"); got != "kept" {
		t.Errorf("X-End-To-End %q", got)
	}
	if got := r.Header.Values("X-Multi"); len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Errorf("X-Multi %q, want both values in order", got)
	}
	if len(r.Trailer) != 0 {
		t.Errorf("request trailers announced to the backend: %v", r.Trailer)
	}
}

func TestForward_TeTrailersKept(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	for _, te := range []string{"trailers", "gzip, Trailers"} {
		h.do("GET", "/public/x", map[string]string{"Te": te}, nil).Body.Close()
		if got := h.backend.last().Header.Values("Te"); len(got) != 1 || got[0] != "trailers" {
			t.Errorf("Te %q: backend got %q, want [trailers]", te, got)
		}
	}
}

func TestForward_HopByHopFieldsRemovedFromTheResponse(t *testing.T) {
	servers(t, testHopByHopFieldsRemovedFromTheResponse)
}

func testHopByHopFieldsRemovedFromTheResponse(t *testing.T, serve func(*harness)) {
	h := newHarness(t, baseConfig, nil)
	serve(h)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["Connection"] = []string{"X-Resp-Hop, x-resp-hop2"}
		hd.Set("X-Resp-Hop", "1")
		hd.Set("X-Resp-Hop2", "2")
		hd.Set("Keep-Alive", "timeout=5")
		hd.Set("Proxy-Authenticate", "Basic")
		hd.Set("Proxy-Connection", "keep-alive")
		hd.Set("X-Request-Id", "backend-id")
		hd.Add("Set-Cookie", "a=1")
		hd.Add("Set-Cookie", "b=2")
		hd.Set("X-Kept", "yes")
		io.WriteString(w, "body")
	}
	res := h.do("GET", "/public/x", map[string]string{"X-Request-ID": "client-id"}, nil)
	if body := readBody(t, res); body != "body" {
		t.Fatalf("body %q", body)
	}
	for _, k := range []string{"X-Resp-Hop", "X-Resp-Hop2", "Keep-Alive", "Proxy-Authenticate", "Proxy-Connection"} {
		if v, ok := res.Header[k]; ok {
			t.Errorf("hop-by-hop %s: %q reached the client", k, v)
		}
	}
	if got := res.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "client-id" {
		t.Errorf("X-Request-Id %q, want the gateway's only", got)
	}
	if got := res.Header.Values("Set-Cookie"); len(got) != 2 {
		t.Errorf("Set-Cookie %q, want both", got)
	}
	if res.Header.Get("X-Kept") != "yes" {
		t.Errorf("X-Kept missing: %v", res.Header)
	}
}

// Headers a policy set on the response before the proxy are kept, and the
// backend's values for the same name are added after them.
func TestForward_ResponseHeadersAddToTheGatewaysOwn(t *testing.T) {
	servers(t, testResponseHeadersAddToTheGatewaysOwn)
}

func testResponseHeadersAddToTheGatewaysOwn(t *testing.T, serve func(*harness)) {
	h, _ := newPolicyHarness(t, nil)
	serve(h)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit-Policy", "backend")
		io.WriteString(w, "ok")
	}
	res := h.do("GET", "/limited/x", key(testAPIKey), nil)
	readBody(t, res)
	got := res.Header.Values("RateLimit-Policy")
	if res.StatusCode != 200 || len(got) != 3 || got[2] != "backend" {
		t.Fatalf("status %d, RateLimit-Policy %q", res.StatusCode, got)
	}
	if res.Header.Get("RateLimit") == "" {
		t.Error("the gateway's RateLimit is gone")
	}
}

func TestForward_UnparsableQueryForwardedAsSent(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	for _, q := range []string{"a=1;b=2", "a=%zz&b=1", "a=%4", "x=1&&y", "a=%41"} {
		res, _ := rawRequest(t, h, "GET /public/x?"+q+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if res.StatusCode != 200 {
			t.Errorf("%s: status %d", q, res.StatusCode)
			continue
		}
		if got := h.backend.last().URL.RawQuery; got != q {
			t.Errorf("query %q reached the backend as %q", q, got)
		}
	}
}

func TestForward_XForwarded(t *testing.T) {
	t.Run("untrusted peer", func(t *testing.T) {
		h := newHarness(t, baseConfig, nil)
		h.do("GET", "/public/x", map[string]string{
			"Host": "api.example.com", "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
			"X-Forwarded-Host": "evil.example", "Forwarded": "for=1.2.3.4",
		}, nil).Body.Close()
		r := h.backend.last()
		for k, want := range map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "api.example.com", "X-Forwarded-Proto": "http", "Forwarded": "",
		} {
			if got := r.Header.Values(k); want == "" && len(got) != 0 || want != "" && (len(got) != 1 || got[0] != want) {
				t.Errorf("%s %q, want %q", k, got, want)
			}
		}
	})
	t.Run("trusted peer", func(t *testing.T) {
		h := newHarness(t, baseConfig, map[string]any{"Trusted": "[127.0.0.1/32]"})
		res, _ := rawRequest(t, h, "GET /public/x HTTP/1.1\r\nHost: api.example.com\r\n"+
			"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 198.51.100.7, 10.0.0.1\r\nX-Forwarded-Proto: ftp\r\n\r\n")
		if res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
		r := h.backend.last()
		if got := r.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != "203.0.113.9, 198.51.100.7, 10.0.0.1, 127.0.0.1" {
			t.Errorf("X-Forwarded-For %q", got)
		}
		if got := r.Header.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("X-Forwarded-Proto %q, want http (ftp is not believed)", got)
		}
		if got := r.Header.Get("X-Forwarded-Host"); got != "api.example.com" {
			t.Errorf("X-Forwarded-Host %q", got)
		}
	})
}

// The incoming request's header is not changed by forwarding it.
func TestForward_IncomingHeaderUnchanged(t *testing.T) {
	h := newHarness(t, baseConfig, map[string]any{"Trusted": "[127.0.0.1/32, 192.0.2.0/24]"})
	tok := h.token(nil)
	in := http.Header{
		"Authorization":       {"Bearer " + tok},
		"X-Forwarded-For":     {"192.0.2.1"},
		"X-Forwarded-Proto":   {"https"},
		"X-Gatehouse-Subject": {"mallory"},
		"Connection":          {"X-Hop"},
		"X-Hop":               {"1"},
		"X-Multi":             {"a", "b"},
		"Te":                  {"trailers"},
	}
	want := in.Clone()
	req := httptest.NewRequest("GET", "/orders/1", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	req.Header = in
	rec := httptest.NewRecorder()
	h.gw.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if fmt.Sprint(in) != fmt.Sprint(want) {
		t.Errorf("incoming header changed:\n got %v\nwant %v", in, want)
	}
	r := h.backend.last()
	if got := r.Header.Get("X-Forwarded-For"); got != "192.0.2.1, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", got)
	}
	if r.Header.Get("X-Gatehouse-Subject") != "alice" || r.Header.Get("Authorization") != "" || r.Header.Get("X-Hop") != "" {
		t.Errorf("backend header %v", r.Header)
	}
}

// TestForward_OnlyTheConsumedCredential sends requests whose only
// fields but the Host are the credential the gateway consumes, alone and
// with others: the backend gets none of the credential, the gateway's
// own fields, and every other field the client sent.
func TestForward_OnlyTheConsumedCredential(t *testing.T) {
	servers(t, func(t *testing.T, serve func(*harness)) {
		h := newHarness(t, baseConfig, nil)
		serve(h)
		tok := h.token(map[string]any{"sub": "alice", "scope": "orders:read"})
		for _, c := range []struct {
			name, fields, subject string
			kept                  []string
		}{
			{"token alone", "Authorization: Bearer " + tok + "\r\n", "alice", nil},
			{"API key alone", "X-Api-Key: " + testAPIKey + "\r\n", "partner", nil},
			{"token and a field", "X-Custom: one\r\nAuthorization: Bearer " + tok + "\r\n", "alice", []string{"X-Custom"}},
			{"API key and fields", "X-Api-Key: " + testAPIKey + "\r\nAccept: */*\r\nX-Custom: two\r\n", "partner", []string{"Accept", "X-Custom"}},
			{"token alone again", "Authorization: Bearer " + tok + "\r\n", "alice", nil},
		} {
			res, body := rawRequest(t, h, "GET /orders/1 HTTP/1.1\r\nHost: x\r\n"+c.fields+"\r\n")
			if res.StatusCode != 200 {
				t.Fatalf("%s: status %d: %s", c.name, res.StatusCode, body)
			}
			r := h.backend.last()
			for _, k := range []string{"Authorization", "X-Api-Key"} {
				if _, ok := r.Header[k]; ok {
					t.Errorf("%s: the consumed %s reached the backend", c.name, k)
				}
			}
			if got := r.Header.Get("X-Gatehouse-Subject"); got != c.subject {
				t.Errorf("%s: X-Gatehouse-Subject %q, want %q", c.name, got, c.subject)
			}
			if r.Header.Get("X-Forwarded-For") == "" || r.Header.Get("X-Request-Id") == "" {
				t.Errorf("%s: the gateway's fields are missing: %v", c.name, r.Header)
			}
			for _, k := range c.kept {
				if r.Header.Get(k) == "" {
					t.Errorf("%s: the client's %s did not reach the backend", c.name, k)
				}
			}
			if r.Header.Get("X-Custom") != "" && !slices.Contains(c.kept, "X-Custom") {
				t.Errorf("%s: an earlier request's X-Custom reached the backend", c.name)
			}
		}
	})
}

func TestForward_NoUserAgentAdded(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	res, _ := rawRequest(t, h, "GET /public/x HTTP/1.1\r\nHost: x\r\n\r\n")
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if ua, ok := h.backend.last().Header["User-Agent"]; ok {
		t.Errorf("User-Agent %q added", ua)
	}
	rawRequest(t, h, "GET /public/x HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\n\r\n")
	if ua := h.backend.last().Header.Get("User-Agent"); ua != "curl/8" {
		t.Errorf("User-Agent %q", ua)
	}
}

func TestForward_Trailers(t *testing.T) {
	servers(t, testTrailers)
}

func testTrailers(t *testing.T, serve func(*harness)) {
	h := newHarness(t, baseConfig, nil)
	serve(h)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.WriteHeader(200)
		io.WriteString(w, "payload")
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "unannounced")
	}
	res := h.do("GET", "/public/x", nil, nil)
	if body := readBody(t, res); body != "payload" {
		t.Fatalf("body %q", body)
	}
	if got := res.Trailer.Get("X-Checksum"); got != "abc" {
		t.Errorf("announced trailer X-Checksum %q (trailers %v)", got, res.Trailer)
	}
	if got := res.Trailer.Get("X-Late"); got != "unannounced" {
		t.Errorf("unannounced trailer X-Late %q (trailers %v)", got, res.Trailer)
	}

	// Announced only.
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum, X-Count")
		io.WriteString(w, "payload")
		w.Header().Set("X-Checksum", "def")
		w.Header().Set("X-Count", "1")
	}
	res = h.do("GET", "/public/x", nil, nil)
	readBody(t, res)
	if res.Trailer.Get("X-Checksum") != "def" || res.Trailer.Get("X-Count") != "1" {
		t.Errorf("trailers %v", res.Trailer)
	}
}

// A streamed response reaches the client as it is written: the head at
// once, then every write.
func TestForward_StreamedResponsesAreFlushed(t *testing.T) {
	for _, tc := range []struct{ name, contentType, length string }{
		{"chunked", "text/plain", ""},
		{"event stream with a length", "Text/Event-Stream; charset=utf-8", "26"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, baseConfig, nil)
			headSent, release := make(chan struct{}), make(chan struct{})
			h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				if tc.length != "" {
					w.Header().Set("Content-Length", tc.length)
				}
				w.WriteHeader(200)
				w.(http.Flusher).Flush()
				<-headSent
				io.WriteString(w, "data: first\n\n")
				w.(http.Flusher).Flush()
				<-release
				io.WriteString(w, "data: second\n\n")
			}
			var once sync.Once
			defer once.Do(func() { close(headSent) })
			defer close(release)
			type result struct {
				res *http.Response
				err error
			}
			done := make(chan result, 1)
			go func() {
				req, _ := http.NewRequest("GET", h.srv.URL+"/public/events", nil)
				res, err := h.srv.Client().Do(req)
				done <- result{res, err}
			}()
			var res *http.Response
			select {
			case d := <-done:
				if d.err != nil {
					t.Fatal(d.err)
				}
				res = d.res
			case <-time.After(3 * time.Second):
				t.Fatal("the response head did not arrive before the body")
			}
			defer res.Body.Close()
			once.Do(func() { close(headSent) })
			lines := make(chan string, 1)
			go func() {
				line, _ := bufio.NewReader(res.Body).ReadString('\n')
				lines <- line
			}()
			select {
			case line := <-lines:
				if line != "data: first\n" {
					t.Fatalf("first line %q", line)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("the first event did not arrive before the response ended")
			}
		})
	}
}

// 103 Early Hints reach the client before the response, which keeps the
// gateway's own fields (ReverseProxy's forwarding of 1xx dropped them).
func TestForward_EarlyHints(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "final")
	}
	var mu sync.Mutex
	var hints []textproto.MIMEHeader
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, hdr textproto.MIMEHeader) error {
			if code == http.StatusEarlyHints {
				mu.Lock()
				hints = append(hints, hdr)
				mu.Unlock()
			}
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/public/x", nil)
	req.Header.Set("X-Request-ID", "hint-1")
	res, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, res); body != "final" || res.StatusCode != 200 {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	res.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(hints) != 1 || hints[0].Get("Link") != "</style.css>; rel=preload; as=style" {
		t.Fatalf("early hints %v", hints)
	}
	if got := hints[0].Get("X-Request-Id"); got != "" {
		t.Errorf("the gateway's X-Request-Id %q was sent with the 103", got)
	}
	if got := res.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "hint-1" {
		t.Errorf("final response X-Request-Id %q", got)
	}
	if res.Header.Get("Link") != "" {
		t.Errorf("the hint's Link leaked into the final response")
	}
}

func TestForward_HeadKeepsContentLength(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1234")
		w.WriteHeader(200)
	}
	res := h.do("HEAD", "/public/x", nil, nil)
	if res.StatusCode != 200 || res.ContentLength != 1234 {
		t.Fatalf("HEAD: %d, Content-Length %d", res.StatusCode, res.ContentLength)
	}
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }
	res = h.do("GET", "/public/x", nil, nil)
	if res.StatusCode != 204 || readBody(t, res) != "" {
		t.Fatalf("204: %d", res.StatusCode)
	}
}

func TestForward_RequestBodies(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	tok := h.token(nil)
	// Declared length.
	res := h.do("POST", "/orders/", bearer(tok), strings.NewReader("declared"))
	res.Body.Close()
	r := h.backend.last()
	if res.StatusCode != 200 || r.ContentLength != 8 {
		t.Fatalf("status %d, backend Content-Length %d", res.StatusCode, r.ContentLength)
	}
	// Chunked.
	req, _ := http.NewRequest("POST", h.srv.URL+"/orders/", io.MultiReader(strings.NewReader("chun"), strings.NewReader("ked")))
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	h.backend.mu.Lock()
	body := string(h.backend.bodies[len(h.backend.bodies)-1])
	h.backend.mu.Unlock()
	if res.StatusCode != 200 || body != "chunked" {
		t.Fatalf("chunked: status %d, backend body %q", res.StatusCode, body)
	}
}

// Served without an http.Server (no http.ServerContextKey), a response
// that breaks off is cut short without a panic, as ReverseProxy does.
func TestForward_BrokenResponseOutsideAServerDoesNotPanic(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	h.backend.handler = breakOffAfterTenBytes
	req := httptest.NewRequest("GET", "/public/broken", nil)
	rec := httptest.NewRecorder()
	h.gw.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Body.String() != "only ten b" {
		t.Fatalf("%d %q", rec.Code, rec.Body)
	}
}

// A complete response of known length is sent before the gateway writes
// its access line: the client has it while the log and the metrics are
// done. The access log here waits (at most 2 s) for the client to have
// read the whole body; without the early send it would wait in vain.
func TestForward_SendsCompleteResponseBeforeAccessLog(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	}
	received := make(chan struct{})
	waited := make(chan bool, 1)
	h.rt.AccessLog = observe.NewAccessLog(slog.New(waitingHandler{received: received, waited: waited}))
	res, err := h.srv.Client().Get(h.srv.URL + "/public/x")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || string(body) != "hello" {
		t.Fatalf("body %q, %v", body, err)
	}
	close(received)
	if inTime := <-waited; !inTime {
		t.Fatal("the client had the response only after the access line was written")
	}
}

// waitingHandler is a slog.Handler whose Handle waits for received (or
// 2 s) and reports on waited whether it came in time.
type waitingHandler struct {
	received chan struct{}
	waited   chan bool
}

func (h waitingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h waitingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h waitingHandler) WithGroup(string) slog.Handler            { return h }
func (h waitingHandler) Handle(context.Context, slog.Record) error {
	select {
	case <-h.received:
		h.waited <- true
	case <-time.After(2 * time.Second):
		h.waited <- false
	}
	return nil
}

// A Host that is not a host with an optional port of digits (RFC 9112
// §3.2) gets 400 and is routed nowhere: "api.example.com:80:80" went to
// the API for every host, while a backend reading the host up to its
// first colon took it for api.example.com.
func TestGateway_InvalidHostIs400(t *testing.T) {
	h := newHarness(t, baseConfig, nil)
	for host, want := range map[string]int{
		"api.example.com:80:80": 400,
		"api.example.com:abc":   400,
		"[::1":                  400,
		"[::1]x":                400,
		"a b":                   400,
		"a/b":                   400,
		"a@b":                   400,
		"a%2":                   400,
		"a%zz.example":          400,
		"a%2e.example":          200,
		"example.com":           200,
		"example.com:8080":      200,
		"EXAMPLE.com.":          200,
		"127.0.0.1:80":          200,
		"[::1]:8080":            200,
		"[fe80::1%25eth0]":      200,
	} {
		res, _ := rawRequest(t, h, "GET /public/status HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
		if res.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, res.StatusCode, want)
		}
	}
}
