package h1

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// TestParseRequestHead_Accepts lists heads the parser must accept, with
// what it must understand of each.
func TestParseRequestHead_Accepts(t *testing.T) {
	cases := []struct {
		name    string
		head    string
		check   func(h *requestHead, b []byte) bool
		explain string
	}{
		{"simple GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			func(h *requestHead, b []byte) bool {
				return string(h.method.get(b)) == "GET" && h.minor == 1 && !h.close
			}, "GET, 1.1, keep-alive"},
		{"HTTP/1.0 closes by default", "GET / HTTP/1.0\r\n\r\n",
			func(h *requestHead, b []byte) bool { return h.minor == 0 && h.close }, "1.0 without keep-alive closes"},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
			func(h *requestHead, b []byte) bool { return !h.close && h.keepAlive }, "keep-alive honoured"},
		{"Connection close among tokens", "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n",
			func(h *requestHead, b []byte) bool { return h.close }, "close token found case-insensitively"},
		{"Content-Length", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0012\r\n\r\n",
			func(h *requestHead, b []byte) bool { return h.contentLength == 12 }, "length 12"},
		{"chunked any case", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n",
			func(h *requestHead, b []byte) bool { return h.chunked && h.contentLength == -1 }, "chunked"},
		{"optional whitespace around value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: \t v w \t\r\n\r\n",
			func(h *requestHead, b []byte) bool { return string(h.fields[1].value.get(b)) == "v w" }, "value trimmed"},
		{"empty value", "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n",
			func(h *requestHead, b []byte) bool { return h.fields[1].value.len() == 0 }, "empty value"},
		{"obs-text in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xc3\xa9\r\n\r\n",
			func(h *requestHead, b []byte) bool { return len(h.fields) == 2 }, "bytes >= 0x80 allowed in values"},
		{"query", "GET /p?a=1&b=%zz HTTP/1.1\r\nHost: a\r\n\r\n",
			func(h *requestHead, b []byte) bool {
				return string(h.path.get(b)) == "/p" && string(h.query.get(b)) == "a=1&b=%zz"
			}, "query kept raw"},
		{"absolute-form", "GET http://Example.com:8080/p?q HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
			func(h *requestHead, b []byte) bool {
				return h.form == formAbsolute && string(h.authority.get(b)) == "Example.com:8080" && string(h.path.get(b)) == "/p"
			}, "authority and path"},
		{"asterisk-form for OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
			func(h *requestHead, b []byte) bool { return h.form == formAsterisk }, "asterisk"},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n",
			func(h *requestHead, b []byte) bool { return h.host == -1 }, "Host optional in 1.0"},
		{"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n",
			func(h *requestHead, b []byte) bool { return h.host == 0 }, "RFC 9112 §3.2 empty Host"},
		{"Expect 100-continue", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
			func(h *requestHead, b []byte) bool { return h.expect100 }, "expectation noted"},
		{"Expect ignored in HTTP/1.0", "PUT / HTTP/1.0\r\nExpect: something\r\n\r\n",
			func(h *requestHead, b []byte) bool { return !h.expect100 }, "RFC 9110 §10.1.1"},
		{"upgrade offer", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
			func(h *requestHead, b []byte) bool { return h.upgrade }, "upgrade needs both fields"},
		{"Upgrade without Connection token", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
			func(h *requestHead, b []byte) bool { return !h.upgrade }, "not an upgrade"},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\n",
			func(h *requestHead, b []byte) bool { return h.h2Preface }, "preface recognized"},
		{"percent-encoded path", "GET /a%2Fb%20c HTTP/1.1\r\nHost: a\r\n\r\n",
			func(h *requestHead, b []byte) bool { return h.pathEscaped }, "escapes noted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h requestHead
			b := []byte(tc.head)
			if err := parseRequestHead(b, &h, DefaultMaxURIBytes); err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.check(&h, b) {
				t.Errorf("parsed wrongly: want %s", tc.explain)
			}
		})
	}
}

// TestParseRequestHead_Refuses lists heads the parser must refuse, each
// named after what accepting it would allow, with the status to answer.
func TestParseRequestHead_Refuses(t *testing.T) {
	long := "/" + strings.Repeat("a", 100)
	cases := []struct {
		name   string
		head   string
		status int
	}{
		// Request smuggling: two parsers must never disagree on where a
		// request ends.
		{"smuggling: Content-Length with Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"smuggling: two Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400},
		{"smuggling: Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400},
		{"smuggling: signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400},
		{"smuggling: hex Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400},
		{"smuggling: empty Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400},
		{"smuggling: huge Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"smuggling: Transfer-Encoding gzip, chunked (a coding not implemented, RFC 9112 §6.1)", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"smuggling: Transfer-Encoding chunked, identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400},
		{"smuggling: obfuscated Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
		{"smuggling: Transfer-Encoding with a quote", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400},
		{"smuggling: two Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"smuggling: Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"smuggling: space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400},
		{"smuggling: tab before colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n", 400},
		{"smuggling: obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400},
		{"smuggling: obs-fold of Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 400},
		{"smuggling: whitespace before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
		{"smuggling: bare LF in request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
		{"smuggling: bare LF ending a field", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400},
		{"smuggling: bare LF ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
		{"smuggling: bare CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
		{"header injection: NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400},
		{"header injection: DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400},
		{"header injection: control in a name", "GET / HTTP/1.1\r\nHost: a\r\nX\x01Y: b\r\n\r\n", 400},
		{"header injection: non-token name", "GET / HTTP/1.1\r\nHost: a\r\nX(Y): b\r\n\r\n", 400},
		{"header injection: empty name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400},
		{"header injection: line without colon", "GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n", 400},
		// Host confusion: routing and authorization must see one host.
		{"host confusion: missing Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"host confusion: two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"host confusion: Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
		{"host confusion: Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"host confusion: Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400},
		{"host confusion: absolute-form differs from Host", "GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", 400},
		{"host confusion: userinfo in absolute-form", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"host confusion: empty authority", "GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		// Request line: anything a second parser could read differently.
		{"request line: two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"request line: trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
		{"request line: tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"request line: HTTP/0.9", "GET /\r\n\r\n", 400},
		{"request line: lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
		{"request line: unknown version", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
		{"request line: HTTP/2.0 outside the preface", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"request line: non-token method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"request target: authority-form (CONNECT)", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 400},
		{"request target: asterisk for GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"request target: relative path", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"request target: other scheme", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"request target: fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"request target: control character", "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"request target: non-ASCII byte", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"request target: DEL", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"request target: truncated escape", "GET /a%2 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"request target: invalid escape", "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"request target: too long", "GET " + long + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
		// Expectations the server cannot meet.
		{"unsupported expectation", "GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417},
		{"incomplete head", "GET / HTTP/1.1\r\nHost: a\r\n", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h requestHead
			err := parseRequestHead([]byte(tc.head), &h, 64)
			if err == nil {
				t.Fatalf("accepted")
			}
			if err.status != tc.status {
				t.Errorf("status %d (%s), want %d", err.status, err.reason, tc.status)
			}
		})
	}
}

// TestBuildRequest_MatchesNetHTTP checks that the *http.Request handlers
// get carries what net/http's would.
func TestBuildRequest_MatchesNetHTTP(t *testing.T) {
	cases := []struct {
		name, head                            string
		method, path, rawPath, rawQuery, host string
		uri                                   string
		header                                http.Header
		contentLength                         int64
	}{
		{name: "canonical names and repeated fields",
			head:   "GET /a?b=c HTTP/1.1\r\nhost: h\r\nx-ONE: 1\r\nX-One: 2\r\naccept-encoding: gzip\r\n\r\n",
			method: "GET", path: "/a", rawQuery: "b=c", host: "h", uri: "/a?b=c",
			header: http.Header{"X-One": {"1", "2"}, "Accept-Encoding": {"gzip"}}},
		{name: "escaped path",
			head:   "GET /a%2Fb%20c HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "GET", path: "/a/b c", rawPath: "/a%2Fb%20c", host: "h", uri: "/a%2Fb%20c", header: http.Header{}},
		{name: "escaped path with default escaping has no RawPath",
			head:   "GET /a%20b HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "GET", path: "/a b", host: "h", uri: "/a%20b", header: http.Header{}},
		{name: "absolute-form takes the host from the target",
			head:   "GET http://h:81/p HTTP/1.1\r\nHost: h:81\r\n\r\n",
			method: "GET", path: "/p", host: "h:81", uri: "http://h:81/p", header: http.Header{}},
		{name: "content length kept in the header",
			head:   "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n",
			method: "POST", path: "/p", host: "h", uri: "/p", header: http.Header{"Content-Length": {"3"}}, contentLength: 3},
		{name: "chunked framing is not a header",
			head:   "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
			method: "POST", path: "/p", host: "h", uri: "/p", header: http.Header{}, contentLength: -1},
	}
	tmpl := (&http.Request{RemoteAddr: "192.0.2.1:1234"}).WithContext(context.Background())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h requestHead
			b := []byte(tc.head)
			if err := parseRequestHead(b, &h, DefaultMaxURIBytes); err != nil {
				t.Fatal(err)
			}
			r, _, err := buildRequest(tmpl, b, &h, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Method != tc.method || r.URL.Path != tc.path || r.URL.RawPath != tc.rawPath || r.URL.RawQuery != tc.rawQuery ||
				r.Host != tc.host || r.RequestURI != tc.uri || r.ContentLength != tc.contentLength || r.RemoteAddr != "192.0.2.1:1234" {
				t.Errorf("got %s path=%q raw=%q query=%q host=%q uri=%q cl=%d remote=%q", r.Method, r.URL.Path, r.URL.RawPath,
					r.URL.RawQuery, r.Host, r.RequestURI, r.ContentLength, r.RemoteAddr)
			}
			if len(r.Header) != len(tc.header) {
				t.Errorf("header %v, want %v", r.Header, tc.header)
			}
			for k, v := range tc.header {
				if strings.Join(r.Header[k], "|") != strings.Join(v, "|") {
					t.Errorf("header %s = %q, want %q", k, r.Header[k], v)
				}
			}
			// The request must be independent of the buffer it came from.
			for i := range b {
				b[i] = 'x'
			}
			if r.Method != tc.method || r.RequestURI != tc.uri {
				t.Errorf("request shares memory with the connection's buffer")
			}
			if r.Context() != tmpl.Context() {
				t.Errorf("context not carried")
			}
		})
	}
}

// TestParseRequestHead_DoesNotAllocate holds the promise of a
// zero-allocation parser.
func TestParseRequestHead_DoesNotAllocate(t *testing.T) {
	var h requestHead
	parseRequestHead(benchRequest, &h, DefaultMaxURIBytes)
	if n := testing.AllocsPerRun(100, func() { parseRequestHead(benchRequest, &h, DefaultMaxURIBytes) }); n != 0 {
		t.Errorf("%v allocations per parse", n)
	}
	var rh responseHead
	head := benchResponse[:len(benchResponse)-len(benchBody)]
	parseResponseHead(head, &rh)
	if n := testing.AllocsPerRun(100, func() { parseResponseHead(head, &rh) }); n != 0 {
		t.Errorf("%v allocations per response parse", n)
	}
}

// TestBuildRequest_RepeatedFields: repeated field names, few or many,
// become one entry with every value in order, as net/http's reader makes
// them (names of any case; Host and the framing fields aside).
func TestBuildRequest_RepeatedFields(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	names := []string{"X-A", "x-b", "X-Long-Name-Here", "x-a", "Accept", "X-Ab", "X-C-D"}
	tmpl := (&http.Request{RemoteAddr: "127.0.0.1:40000"}).WithContext(context.Background())
	for round := range 300 {
		var head strings.Builder
		head.WriteString("GET / HTTP/1.1\r\nHost: example.com\r\n")
		n := 1 + rng.IntN(40) // both sides of the 17-field switch to map lookups
		for i := range n {
			fmt.Fprintf(&head, "%s: v%d\r\n", names[rng.IntN(len(names))], i)
		}
		head.WriteString("\r\n")
		want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head.String())))
		if err != nil {
			t.Fatal(err)
		}
		buf := []byte(head.String())
		var h requestHead
		if err := parseRequestHead(buf, &h, DefaultMaxURIBytes); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		got, _, err := buildRequest(tmpl, buf, &h, nil)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("round %d (%d fields):\n got %v\nwant %v", round, n, got.Header, want.Header)
		}
	}
}

// validAuthority refuses what url.Parse refuses in an authority that
// hostChars lets through (ports that are not digits, percent signs that
// do not escape a non-ASCII byte or %25), and accepts these.
func TestValidAuthority(t *testing.T) {
	for _, tc := range []struct {
		a  string
		ok bool
	}{
		{"a", true}, {"a:80", true}, {"a:", true}, {"[::1]:8080", true}, {"[::1]", true},
		{"%C3%A9x", true}, {"[fe80::1%25eth0]:80", true},
		{"a:8A", false}, {"a:b:80", false}, {"%0", false}, {"%0A", false}, {"%25", true},
		{"%zz", false}, {"%7F", false}, {"[::1", false}, {"[::1]x", false}, {"[::1]:8x", false},
	} {
		if got := validAuthority([]byte(tc.a)); got != tc.ok {
			t.Errorf("validAuthority(%q) = %v, want %v", tc.a, got, tc.ok)
		}
		if _, err := url.Parse("http://" + tc.a + "/"); !tc.ok && err == nil {
			t.Errorf("%q: url.Parse accepts it, so refusing it is not url.Parse's rule", tc.a)
		}
	}
}

// TestBuildRequest_ReuseKeepsNothingOfTheLast: a reused requestAlloc
// holds nothing of the request before (a large head must not stay alive
// for as long as the connection), and the same header as a new one.
func TestBuildRequest_ReuseKeepsNothingOfTheLast(t *testing.T) {
	a := new(requestAlloc)
	build := func(raw string) *http.Request {
		t.Helper()
		r, _ := parseAndBuild(t, raw, a)
		return r
	}
	build("GET /a?x=1 HTTP/1.1\r\nHost: h\r\nA: " + strings.Repeat("v", 4096) + "\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n")
	r := build("GET /b HTTP/1.1\r\nHost: h\r\nE: 5\r\n\r\n")
	if got := fmt.Sprint(r.Header); got != "map[E:[5]]" || r.URL.RawQuery != "" || r.URL.Path != "/b" {
		t.Errorf("second request: header %s, URL %+v", got, r.URL)
	}
	for i, v := range a.vals[1:] {
		if v != "" {
			t.Errorf("vals[%d] still holds %.20q… of the request before", i+1, v)
		}
	}

	// A head with more fields than vals holds takes its values' array
	// from more, which keeps nothing of the request before either.
	many := func(n int, v string) string {
		var b strings.Builder
		b.WriteString("GET /c HTTP/1.1\r\nHost: h\r\n")
		for i := range n {
			fmt.Fprintf(&b, "F%02d: %s%d\r\n", i, v, i)
		}
		return b.String() + "\r\n"
	}
	build(many(12, strings.Repeat("w", 4096)))
	r = build(many(11, "x"))
	if len(r.Header) != 11 || r.Header.Get("F10") != "x10" || r.Header.Get("F11") != "" {
		t.Errorf("eleven fields after twelve: header %v", r.Header)
	}
	for i, v := range a.more[:cap(a.more)] {
		if strings.Contains(v, "w") {
			t.Errorf("more[%d] still holds %.20q… of the request before", i, v)
		}
	}
	r = build("GET /d HTTP/1.1\r\nHost: h\r\nG: 7\r\n\r\n")
	if got := fmt.Sprint(r.Header); got != "map[G:[7]]" {
		t.Errorf("after many fields: header %s", got)
	}
	for i, v := range a.more[:cap(a.more)] {
		if v != "" {
			t.Errorf("more[%d] still holds %q of a request before", i, v)
		}
	}
	if cap(a.more) > maxReusedVals {
		t.Errorf("more grew to %d values, more than %d", cap(a.more), maxReusedVals)
	}
	build(many(maxReusedVals+1, "y")) // beyond the bound: an array of its own
	if cap(a.more) > maxReusedVals {
		t.Errorf("more grew to %d values, more than %d", cap(a.more), maxReusedVals)
	}
}

// TestBuildRequest_RepeatedNames: heads of up to 40 fields whose names
// repeat (some of them in another case, some sharing a NameBit) give the
// header map net/http gives, built new or in a reused requestAlloc.
func TestBuildRequest_RepeatedNames(t *testing.T) {
	names := []string{"Accept", "Origin", "accept", "X-A", "X-B", "Cookie", "Via", "x-a", "Warning", "Accept-Encoding", "A", "B", "Sec-Fetch-Mode"}
	rng := rand.New(rand.NewPCG(1, 2))
	reused := new(requestAlloc)
	for n := range 2000 {
		var b strings.Builder
		b.WriteString("GET / HTTP/1.1\r\nHost: h\r\n")
		for i := range rng.IntN(41) {
			fmt.Fprintf(&b, "%s: v%d\r\n", names[rng.IntN(len(names))], i)
		}
		b.WriteString("\r\n")
		raw := b.String()
		std, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []*requestAlloc{nil, reused} {
			r, _ := parseAndBuild(t, raw, a)
			if got, want := fmt.Sprint(r.Header), fmt.Sprint(std.Header); got != want {
				t.Fatalf("head %d (reused %v):\n%q\nh1:       %s\nnet/http: %s", n, a != nil, raw, got, want)
			}
		}
	}
}

// parseAndBuild parses the head raw and builds its request in a (nil: a
// new requestAlloc), failing t if either refuses it. It also returns
// where the head's copy is (headAt reads it).
func parseAndBuild(t *testing.T, raw string, a *requestAlloc) (*http.Request, *byte) {
	t.Helper()
	buf := []byte(raw)
	var h requestHead
	if err := parseRequestHead(buf, &h, DefaultMaxURIBytes); err != nil {
		t.Fatal(err)
	}
	r, parsed, err := buildRequest(&http.Request{RemoteAddr: "192.0.2.1:1234"}, buf, &h, a)
	if err != nil {
		t.Fatal(err)
	}
	return r, parsed
}

// A connection keeps the parsed form of a head for the next one only up
// to maxReusedFields field lines: a head with thousands of small fields
// (they fit in 64 KB) would otherwise leave it holding a large map and
// slices for the rest of its life.
func TestReuse_ManyFieldsAreNotKept(t *testing.T) {
	same := func(a, b http.Header) bool {
		return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
	}
	var h http.Header
	small := reusedHeader(&h, 4)
	for i := range maxReusedFields {
		small.Set(fmt.Sprintf("X-F%d", i), "v")
	}
	if again := reusedHeader(&h, 4); !same(again, small) || len(again) != 0 {
		t.Fatal("a map of maxReusedFields names was not cleared and reused")
	}
	for i := range 9000 {
		h.Set(fmt.Sprintf("X-F%d", i), "v")
	}
	if again := reusedHeader(&h, 4); same(again, small) || len(again) != 0 {
		t.Fatal("a map of 9000 names was kept")
	}

	var head requestHead
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "X-F%d: v\r\n", i)
	}
	b.WriteString("\r\n")
	if pe := parseRequestHead([]byte(b.String()), &head, 8192); pe != nil {
		t.Fatal(pe)
	}
	head.reset()
	if cap(head.fields) > maxReusedFields || cap(head.kinds) > maxReusedFields {
		t.Fatalf("kept %d fields' room after a head of 2001", cap(head.fields))
	}
}
