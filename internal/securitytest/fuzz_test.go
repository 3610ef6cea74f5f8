package securitytest_test

import (
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/securitytest"
	"github.com/gatehouse-dev/gatehouse/internal/securitytest/seedcorpus"
)

// requestSeeds are the raw request streams of the attack catalogues.
func requestSeeds() map[string][]any {
	seeds := map[string][]any{}
	for _, tc := range smugglingCases() {
		raw := tc.raw
		if !tc.bare {
			raw = string(crlf(raw))
		}
		seeds["smuggling_"+tc.name] = []any{[]byte(raw)}
	}
	for _, a := range pathAttacks {
		host := a.host
		if host == "" {
			host = "x"
		}
		seeds["path_"+a.name] = []any{[]byte("GET " + a.target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n")}
	}
	seeds["spoofed_headers"] = []any{[]byte("GET /public/x HTTP/1.1\r\nHost: x\r\n" + strings.Join(spoofHeaders, "\r\n") + "\r\n\r\n")}
	seeds["expect_continue"] = []any{[]byte("PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")}
	seeds["websocket"] = []any{[]byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")}
	seeds["connect"] = []any{[]byte("CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n")}
	seeds["options_asterisk"] = []any{[]byte("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")}
	seeds["trace"] = []any{[]byte("TRACE /admin HTTP/1.1\r\nHost: x\r\n\r\n")}
	seeds["bearer_garbage"] = []any{[]byte("GET /admin/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a.b.c\r\n\r\n")}
	seeds["two_authorization"] = []any{[]byte("GET /admin/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n")}
	return seeds
}

func TestSeedCorpus_GatewayRequest(t *testing.T) {
	seedcorpus.CheckSeedCorpus(t, "FuzzGatewayRequest", requestSeeds())
}

// ledger compares, across all fuzz inputs, what the backend received with
// what the access log says was forwarded (cumulative, because a request
// cut off by a client that half-closed may land at the backend after the
// gateway has answered).
type ledger struct {
	mu        sync.Mutex
	logOff    int
	forwarded map[string]int
	received  map[string]int
	seen      int
}

func (l *ledger) check(t *testing.T, e *env) {
	l.mu.Lock()
	defer l.mu.Unlock()
	log := e.gw.AccessLog.String()
	for _, a := range parseAccess(log[l.logOff:]) {
		if a.Forwarded() {
			l.forwarded[a.Method+" "+a.Path]++
		}
	}
	l.logOff = len(log)
	reqs := e.be.Requests()
	for _, r := range reqs[l.seen:] {
		p, _, _ := strings.Cut(r.Target, "?")
		if d, err := url.PathUnescape(p); err == nil {
			p = d
		}
		k := r.Method + " " + p
		l.received[k]++
		if l.received[k] > l.forwarded[k] {
			tail := log
			if len(tail) > 3000 {
				tail = tail[len(tail)-3000:]
			}
			t.Fatalf("the backend received %q (%d times, logged %d), which the gateway did not log as forwarded\nraw: %q\nlog tail:\n%s",
				k, l.received[k], l.forwarded[k], r.Raw, tail)
		}
		if underAdmin(p, false) {
			t.Fatalf("an unauthenticated admin request reached the backend: %q", k)
		}
	}
	l.seen = len(reqs)
	if p := e.be.Problems(); len(p) > 0 {
		t.Fatalf("the backend received ambiguous framing: %v", p)
	}
}

func parseAccess(s string) []securitytest.AccessEntry {
	b := &securitytest.Buffer{}
	b.Write([]byte(s))
	g := &securitytest.Gateway{AccessLog: b}
	return g.Access()
}

// FuzzGatewayRequest sends arbitrary bytes to the gateway's HTTP/1.1
// listener as one client connection. Whatever the bytes: the gateway
// does not panic or hang, every byte it answers parses as HTTP responses,
// the backend receives only unambiguous framing, only requests the access
// log says were forwarded, and never an unauthenticated /admin request.
func FuzzGatewayRequest(f *testing.F) {
	e := newEnv(f, envOptions{ReadHeader: "2s", Read: "2s"})
	l := &ledger{forwarded: map[string]int{}, received: map[string]int{}}
	f.Add([]byte("GET /public/x HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		x, err := securitytest.SendRawHalfClose(e.gw.Addr, raw, 5*time.Second)
		if err != nil {
			return // the gateway closed before reading everything
		}
		if !x.Closed {
			t.Fatalf("the gateway neither answered nor closed within 5s")
		}
		if x.Trailing != nil {
			t.Fatalf("the gateway wrote bytes that are not HTTP responses: %v\n%q", x.Trailing, x.Raw)
		}
		for _, r := range x.Responses {
			if r.StatusCode < 100 || r.StatusCode > 599 {
				t.Fatalf("status %d", r.StatusCode)
			}
		}
		l.check(t, e)
	})
}
