package h1

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// rawHeadProxy is a proxy of h1's Server and Transport that forwards a
// response's fields through a RawHead when the request's query says
// raw=1, and through the header map otherwise; it sets a field of its
// own (X-Own) first, as a gateway does, and forwards trailers.
func rawHeadProxy(t *testing.T, backend string) string {
	tr := &Transport{StripHopByHop: true}
	t.Cleanup(tr.CloseIdleConnections)
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rh RawHead
		rh.Omit = "X-Omitted"
		ctx := r.Context()
		if r.URL.Query().Get("raw") == "1" {
			ctx = context.WithValue(ctx, RawHeadKey, &rh)
		}
		out, _ := http.NewRequestWithContext(ctx, r.Method, backend+r.URL.Path, nil)
		res, err := tr.RoundTrip(out)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		w.Header().Add("X-Own", "proxy")
		if raw := r.URL.Query().Get("raw") == "1"; raw != rh.Of(res) {
			t.Errorf("raw=%v, but the RawHead holds the response: %v", raw, rh.Of(res))
		}
		if rh.Of(res) {
			if !w.(*response).SetRawHead(&rh, nil) {
				t.Error("SetRawHead refused")
			}
		} else {
			for k, vs := range res.Header {
				if k != "X-Omitted" {
					w.Header()[k] = append(w.Header()[k], vs...)
				}
			}
		}
		for k := range res.Trailer {
			w.Header().Add("Trailer", k)
		}
		w.WriteHeader(res.StatusCode)
		io.Copy(w, res.Body)
		for k, vs := range res.Trailer {
			w.Header()[k] = vs
		}
	}))
	return "http://" + addr
}

// randomResponse returns a response head and body for a request of
// method: random fields (hop-by-hop ones, fields a Connection names, the
// proxy's own and omitted names, repeated names, names in any case), a
// random status, reason and framing.
func randomResponse(r *rand.Rand, method string) string {
	statuses := []int{200, 200, 201, 204, 304, 404, 500, 299}
	status := statuses[r.IntN(len(statuses))]
	reason := http.StatusText(status)
	if reason == "" || r.IntN(5) == 0 {
		reason = "Whatever It Says"
	}
	names := []string{"X-A", "x-a", "X-B", "Set-Cookie", "Content-Type", "content-type", "Date", "X-Own", "X-Omitted", "x-omitted",
		"Keep-Alive", "Te", "Upgrade", "Proxy-Authenticate", "PROXY-CONNECTION", "Cache-Control", "X-Named", "x-named-too", "Vary"}
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, reason)
	for n := r.IntN(9); n > 0; n-- {
		name := names[r.IntN(len(names))]
		fmt.Fprintf(&b, "%s: %s%d\r\n", name, []string{"v", "text/plain", "a=1; Path=/", "  spaced  value "}[r.IntN(4)], r.IntN(100))
	}
	if r.IntN(3) == 0 {
		b.WriteString("Connection: " + []string{"X-Named, x-named-too", "close", "keep-alive", "x-a"}[r.IntN(4)] + "\r\n")
	}
	body := strings.Repeat("b", r.IntN(40))
	noBody := method == http.MethodHead || status == 204 || status == 304
	switch framing := r.IntN(3); {
	case noBody:
		if r.IntN(2) == 0 && status != 204 {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
		}
		b.WriteString("\r\n")
	case framing == 0:
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	case framing == 1:
		b.WriteString("Transfer-Encoding: chunked\r\n")
		if r.IntN(2) == 0 {
			b.WriteString("Trailer: X-Sum\r\n\r\n")
			fmt.Fprintf(&b, "%x\r\n%s\r\n0\r\nX-Sum: %d\r\n\r\n", len(body)+1, body+"c", len(body))
		} else {
			fmt.Fprintf(&b, "\r\n%x\r\n%s\r\n0\r\n\r\n", len(body)+1, body+"c")
		}
	default:
		b.WriteString("Connection: close\r\n\r\n" + body)
	}
	return b.String()
}

// TestRawHead_SameAsHeaderMap: a client sees the same response through
// the proxy whether the fields go through a RawHead or through the
// header map (the same fields with the same values in the same order
// within a name, the same framing, body and trailers; the Date the server
// adds may differ by its second), over 400 random responses.
func TestRawHead_SameAsHeaderMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var heads []string
	var methods []string
	for i := range 400 {
		m := http.MethodGet
		if i%7 == 3 {
			m = http.MethodHead
		}
		methods = append(methods, m)
		heads = append(heads, randomResponse(rng, m))
	}
	backend := rawBackend(t, func(c net.Conn, br *bufio.Reader, _ int) {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if readRequestHead(br) != nil {
				return
			}
			f := strings.Fields(line)
			i, _ := strconv.Atoi(strings.TrimPrefix(f[1], "/"))
			io.WriteString(c, heads[i])
			if strings.Contains(heads[i], "Connection: close\r\n") {
				return
			}
		}
	})
	proxy := rawHeadProxy(t, backend)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	get := func(i int, raw string) (*http.Response, string) {
		req, _ := http.NewRequest(methods[i], fmt.Sprintf("%s/%d?raw=%s", proxy, i, raw), nil)
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("response %d (raw=%s): %v", i, raw, err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("response %d (raw=%s): body: %v", i, raw, err)
		}
		return res, string(body)
	}
	for i := range heads {
		viaMap, bodyMap := get(i, "0")
		viaRaw, bodyRaw := get(i, "1")
		for _, h := range []http.Header{viaMap.Header, viaRaw.Header} {
			if len(h["Date"]) == 1 && len(h["Date"][0]) > 0 {
				h["Date"] = []string{"present"}
			}
		}
		if viaMap.Status != viaRaw.Status || bodyMap != bodyRaw || viaMap.ContentLength != viaRaw.ContentLength ||
			!slices.Equal(viaMap.TransferEncoding, viaRaw.TransferEncoding) || viaMap.Close != viaRaw.Close ||
			fmt.Sprint(viaMap.Header) != fmt.Sprint(viaRaw.Header) || fmt.Sprint(viaMap.Trailer) != fmt.Sprint(viaRaw.Trailer) {
			t.Fatalf("response %d:\n%s\nvia the header map: %s %v %q len %d te %v close %v trailer %v\nvia RawHead:        %s %v %q len %d te %v close %v trailer %v",
				i, heads[i], viaMap.Status, viaMap.Header, bodyMap, viaMap.ContentLength, viaMap.TransferEncoding, viaMap.Close, viaMap.Trailer,
				viaRaw.Status, viaRaw.Header, bodyRaw, viaRaw.ContentLength, viaRaw.TransferEncoding, viaRaw.Close, viaRaw.Trailer)
		}
		for _, k := range []string{"Keep-Alive", "Te", "Upgrade", "Proxy-Authenticate", "Proxy-Connection", "X-Omitted"} {
			if _, ok := viaRaw.Header[k]; ok {
				t.Fatalf("response %d: %s reached the client", i, k)
			}
		}
		if viaRaw.Header.Get("X-Own") == "" || viaRaw.Header["X-Own"][0] != "proxy" {
			t.Fatalf("response %d: the proxy's X-Own is not first: %q", i, viaRaw.Header["X-Own"])
		}
	}
}

// TestRawHead_Fill: the RawHead holds the fields to write, names
// canonical, without Content-Length, those Connection names and the
// hop-by-hop ones, and the length and first Content-Type apart.
func TestRawHead_Fill(t *testing.T) {
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
		if readRequestHead(br) == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-type: text/plain\r\nX-A: 2\r\nConnection: x-gone\r\nX-Gone: g\r\nKeep-Alive: 5\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	var rh RawHead
	req := newRequest(t, "GET", url, nil)
	req = req.WithContext(context.WithValue(req.Context(), RawHeadKey, &rh))
	res, body := roundTrip(t, tr, req)
	if !rh.Of(res) || len(res.Header) != 0 || body != "ok" || res.Status != "200 OK" || res.ContentLength != 2 {
		t.Fatalf("Of %v, Header %v, body %q, Status %q, ContentLength %d", rh.Of(res), res.Header, body, res.Status, res.ContentLength)
	}
	if want := "X-A: 1\r\nContent-Type: text/plain\r\nX-A: 2\r\n"; string(rh.lines) != want || rh.contentLength != 2 || rh.hasDate {
		t.Errorf("lines %q, length %d, Date %v; want %q, 2, false", rh.lines, rh.contentLength, rh.hasDate, want)
	}
	if rh.ContentType() != "text/plain" {
		t.Errorf("ContentType %q", rh.ContentType())
	}
}

// TestRawHead_HeaderEmptiedPerResponse: the empty Header of a response
// whose fields went to a RawHead is the connection's, reused: what a
// caller set in it is gone from the next response on that connection.
func TestRawHead_HeaderEmptiedPerResponse(t *testing.T) {
	var conns atomic.Int32
	url := rawBackend(t, func(c net.Conn, br *bufio.Reader, n int) {
		conns.Add(1)
		for readRequestHead(br) == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for i := range 3 {
		var rh RawHead
		req := newRequest(t, "GET", url, nil)
		req = req.WithContext(context.WithValue(req.Context(), RawHeadKey, &rh))
		res, body := roundTrip(t, tr, req)
		if !rh.Of(res) || len(res.Header) != 0 || body != "ok" {
			t.Fatalf("response %d: Of %v, Header %v, body %q; want the fields in the RawHead, an empty Header", i, rh.Of(res), res.Header, body)
		}
		res.Header.Set("X-Caller", "set after the body was read") // must not reach the next response
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections; the test needs the responses on one", n)
	}
}

// TestRawHead_ExtraFields: SetRawHead's extra fields are written in
// order after the header map's fields and before the RawHead's lines, as
// they are when marked Checked; an unchecked one is checked as a header
// map's field: a CR or LF in its value becomes a space, and a name that
// is not a token or that frames the response is not written. An Omit
// field writes nothing; a Lines field its lines as they are, when it is
// Checked, and nothing when not.
func TestRawHead_ExtraFields(t *testing.T) {
	_, backend := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "b")
		io.WriteString(w, "body")
	}))
	tr := &Transport{StripHopByHop: true}
	t.Cleanup(tr.CloseIdleConnections)
	extras := []Fields{
		nil,
		{{Name: "X-Id", Value: "abc", Checked: true}},
		{{Name: "X-Id", Value: "a\r\nX-Injected: 1", Checked: false}},
		{{Name: "Bad Name", Value: "v"}},
		{{Name: "Content-Length", Value: "999"}},
		{{Name: "Connection", Value: "close"}},
		{{Name: "X-One", Value: "1", Checked: true}, {Name: "X-Gone", Omit: true}, {Name: "X-Two", Value: "2"}, {Name: "X-One", Value: "3", Checked: true}},
		{{Name: "X-One", Value: "1", Checked: true}, {Value: "X-L1: a\r\nX-L2: b\r\n", Lines: true, Checked: true}, {Name: "X-Two", Value: "2"}},
		{{Value: "X-L1: a\r\n", Lines: true}},
	}
	_, proxy := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rh RawHead
		out, _ := http.NewRequestWithContext(context.WithValue(r.Context(), RawHeadKey, &rh), "GET", "http://"+backend+"/", nil)
		res, err := tr.RoundTrip(out)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		w.Header().Set("X-Map", "m")
		i, _ := strconv.Atoi(r.URL.Query().Get("extra"))
		if !rh.Of(res) || !w.(*response).SetRawHead(&rh, extras[i]) {
			t.Error("the response's fields are not in the RawHead, or SetRawHead refused")
		}
		io.Copy(w, res.Body)
	}))
	want := []string{
		"X-Map: m|X-Backend: b",
		"X-Map: m|X-Id: abc|X-Backend: b",
		"X-Map: m|X-Id: a  X-Injected: 1|X-Backend: b",
		"X-Map: m|X-Backend: b",
		"X-Map: m|X-Backend: b",
		"X-Map: m|X-Backend: b",
		"X-Map: m|X-One: 1|X-Two: 2|X-One: 3|X-Backend: b",
		"X-Map: m|X-One: 1|X-L1: a|X-L2: b|X-Two: 2|X-Backend: b",
		"X-Map: m|X-Backend: b", // a Lines field that is not Checked writes nothing
	}
	conn, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i := range extras {
		fmt.Fprintf(conn, "GET /?extra=%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		var fields []string
		length := -1
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("extra %d: %v", i, err)
			}
			line = strings.TrimSuffix(line, "\r\n")
			if line == "" {
				break
			}
			switch {
			case strings.HasPrefix(line, "HTTP/1.1 "), strings.HasPrefix(line, "Date: "), strings.HasPrefix(line, "Content-Type: "):
			case strings.HasPrefix(line, "Content-Length: "):
				if length >= 0 {
					t.Errorf("extra %d: a second Content-Length", i)
				}
				length, _ = strconv.Atoi(strings.TrimPrefix(line, "Content-Length: "))
			default:
				fields = append(fields, line)
			}
		}
		if got := strings.Join(fields, "|"); got != want[i] {
			t.Errorf("extra %d: fields %q, want %q", i, got, want[i])
		}
		body := make([]byte, max(length, 0))
		if _, err := io.ReadFull(br, body); err != nil || string(body) != "body" {
			t.Fatalf("extra %d: body %q (length %d), %v", i, body, length, err)
		}
	}
}
