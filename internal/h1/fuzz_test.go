package h1

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"
)

// The fuzz targets are differential: whatever h1 accepts, net/http (more
// lenient) must accept too and understand the same way. A disagreement on
// framing is exactly what request smuggling exploits. Seed corpora are in
// testdata/fuzz/.
//
//	go test -run '^$' -fuzz FuzzParseRequestHead ./internal/h1/

func FuzzParseRequestHead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("POST /x?y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"))
	tmpl := (&http.Request{}).WithContext(context.Background())
	f.Fuzz(func(t *testing.T, data []byte) {
		checkPrefixParse(t, data)
		n, _, err := findHeadEnd(data, 0)
		if err != nil || n == 0 {
			return
		}
		head := data[:n]
		var h requestHead
		if perr := parseRequestHead(head, &h, DefaultMaxURIBytes); perr != nil || h.h2Preface {
			return
		}
		std, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("h1 accepted a head net/http refuses (%v): %q", err, head)
		}
		r, _, err := buildRequest(tmpl, append([]byte(nil), head...), &h, nil)
		if err != nil {
			return // refused (invalid escaping) before reaching a handler
		}
		if r.Method != std.Method || r.RequestURI != std.RequestURI || r.Host != std.Host || r.Close != std.Close {
			t.Fatalf("disagreement on %q:\nh1:       %s %s host=%q close=%v\nnet/http: %s %s host=%q close=%v",
				head, r.Method, r.RequestURI, r.Host, r.Close, std.Method, std.RequestURI, std.Host, std.Close)
		}
		if r.URL.Path != std.URL.Path || r.URL.RawQuery != std.URL.RawQuery {
			t.Fatalf("URL disagreement on %q: %q?%q vs %q?%q", head, r.URL.Path, r.URL.RawQuery, std.URL.Path, std.URL.RawQuery)
		}
		if r.ContentLength != std.ContentLength || strings.Join(r.TransferEncoding, ",") != strings.Join(std.TransferEncoding, ",") {
			t.Fatalf("framing disagreement on %q: CL %d TE %v vs CL %d TE %v",
				head, r.ContentLength, r.TransferEncoding, std.ContentLength, std.TransferEncoding)
		}
		for k, v := range r.Header {
			if strings.Join(v, "\x00") != strings.Join(std.Header[k], "\x00") {
				t.Fatalf("header %s disagreement on %q: %q vs %q", k, head, v, std.Header[k])
			}
		}
	})
}

func FuzzParseResponseHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\ncontent-type: a\r\nConnection: x-a, close\r\nx-A: 1\r\nKeep-Alive: 1\r\nDate: d\r\nContent-Length: 0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkPrefixParse(t, data)
		n, _, err := findHeadEnd(data, 0)
		if err != nil || n == 0 {
			return
		}
		head := data[:n]
		var h responseHead
		if parseResponseHead(head, &h) != nil {
			return
		}
		checkRawHead(t, head, &h)
		std, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
		if err != nil {
			t.Fatalf("h1 accepted a head net/http refuses (%v): %q", err, head)
		}
		if std.StatusCode != h.status || std.ProtoMinor != h.minor {
			t.Fatalf("status disagreement on %q: %d vs %d", head, h.status, std.StatusCode)
		}
		if h.status >= 200 && h.status != 204 && h.status != 304 {
			chunked := len(std.TransferEncoding) > 0
			if chunked != h.chunked || (!chunked && std.ContentLength != h.contentLength) {
				t.Fatalf("framing disagreement on %q: chunked %v CL %d vs chunked %v CL %d",
					head, h.chunked, h.contentLength, chunked, std.ContentLength)
			}
		}
	})
}

func FuzzChunked(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("3;a=b\r\nabc\r\n0\r\nX: y\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		src := bytes.NewReader(data)
		var r reader
		r.reset(src)
		var cr chunkedReader
		cr.reset(&r, true, 4096)
		got, err := io.ReadAll(&cr)
		if err != nil {
			return
		}
		consumed := len(data) - len(r.bytes()) - src.Len()
		// net/http's decoder must agree on the body when it ends where
		// ours does (it leaves the trailer section to its caller).
		std, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(data[:consumed])))
		if err != nil {
			t.Fatalf("h1 accepted chunked data net/http refuses (%v): %q", err, data[:consumed])
		}
		if !bytes.Equal(got, std) {
			t.Fatalf("body disagreement on %q: %q vs %q", data[:consumed], got, std)
		}
		// Whatever decoded re-encodes and decodes to the same bytes.
		var enc bytes.Buffer
		w := httputil.NewChunkedWriter(&enc)
		w.Write(got)
		w.Close()
		enc.WriteString("\r\n")
		var r2 reader
		r2.reset(&enc)
		var cr2 chunkedReader
		cr2.reset(&r2, false, 4096)
		again, err := io.ReadAll(&cr2)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("round trip of %q: %q, %v", got, again, err)
		}
	})
}

// checkRawHead checks that the lines RawHead.fill writes for a parsed
// response head are valid field lines holding what the header map would
// hold with the hop-by-hop fields, those Connection names and
// Content-Length left out.
func checkRawHead(t *testing.T, head []byte, h *responseHead) {
	t.Helper()
	viaMap := bytes.Clone(head)
	var hv responseHead
	if err := parseResponseHead(viaMap, &hv); err != nil {
		t.Fatalf("a copy of %q does not parse: %v", head, err)
	}
	for _, f := range hv.fields {
		canonicalizeName(f.name.get(viaMap))
	}
	want := makeHeader(string(viaMap), hv.fields, hv.kinds, 0, nil)
	RemoveHopByHop(want)
	delete(want, "Content-Length")

	var rh RawHead
	res := new(http.Response)
	rh.fill(res, h, bytes.Clone(head), hopByHopKinds|1<<kindContentLength)
	got := http.Header{}
	for b := rh.lines; len(b) > 0; {
		f, next, err := parseFieldLine(b, 0)
		if err != nil {
			t.Fatalf("RawHead of %q wrote %q, not field lines: %v", head, rh.lines, err)
		}
		k := string(f.name.get(b))
		got[k] = append(got[k], string(f.value.get(b)))
		b = b[next:]
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || rh.contentLength != h.contentLength || rh.hasType != (len(want["Content-Type"]) > 0) ||
		rh.hasType && rh.ContentType() != want["Content-Type"][0] {
		t.Fatalf("RawHead of %q: %v (length %d), want %v (length %d)", head, got, rh.contentLength, want, h.contentLength)
	}
}
