package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// TestParsedHead: the strings of a parsed request lie in its head's copy;
// parsedName accepts a field's whole name only, inHead any part of any
// string of the request, and neither a string from elsewhere.
func TestParsedHead(t *testing.T) {
	raw := "GET /p?q=1 HTTP/1.1\r\nHost: h\r\naccept-language: en, fr\r\nX-V: a b:c\r\nX-Last: z\r\n\r\n"
	r, p := parseAndBuild(t, raw, new(requestAlloc))
	s := headAt(p)
	if s != strings.Replace(raw, "accept-language", "Accept-Language", 1) {
		t.Fatalf("headAt: %q", s)
	}
	if headAt(nil) != "" {
		t.Error("headAt(nil) is not empty")
	}
	for k, vs := range r.Header {
		if !parsedName(s, k) {
			t.Errorf("the name %q is not a parsed name", k)
		}
		for _, v := range vs {
			if !inHead(s, v) {
				t.Errorf("the value %q of %s is not in the head", v, k)
			}
		}
	}
	v := r.Header["X-V"][0] // "a b:c"
	lang := r.Header["Accept-Language"][0]
	var name string
	for k := range r.Header {
		if k == "Accept-Language" {
			name = k // the map's own key, in the head
		}
	}
	for _, c := range []struct {
		what   string
		str    string
		inHead bool
		name   bool
	}{
		{"part of a value", v[:3], true, false}, // "a b", before a colon
		{"part of a value after a space", v[2:3], true, false},
		{"the last value", r.Header["X-Last"][0], true, false},
		{"the method", r.Method, true, false}, // starts the head, not a line after a LF
		{"the target", r.RequestURI, true, false},
		{"the Host", r.Host, true, false},
		{"the start of a name", name[:6], true, false}, // "Accept", before a hyphen
		{"the end of a name", name[7:], true, false},   // "Language", up to the colon but not from a line's start
		{"a value's part that ends the head", lang[len(lang)-2:], true, false},
		{"a copy of a name", strings.Clone(name), false, false},
		{"a literal", "Accept-Language", false, false},
		{"empty", "", false, false},
	} {
		if got := inHead(s, c.str); got != c.inHead {
			t.Errorf("%s (%q): inHead %v, want %v", c.what, c.str, got, c.inHead)
		}
		if got := parsedName(s, c.str); got != c.name {
			t.Errorf("%s (%q): parsedName %v, want %v", c.what, c.str, got, c.name)
		}
	}
	if inHead(s, s+"x") || inHead("", "x") {
		t.Error("a string longer than the head, or an empty head, holds a value")
	}
}

// TestTransport_ParsedFieldsUnchecked: a handler on this package's Server
// that forwards the request through its Transport sends the client's
// fields as they came, and parts of them as fields of their own; a name
// that is part of a value, or a value made to hold a line end, is still
// refused though its bytes came from the head.
func TestTransport_ParsedFieldsUnchecked(t *testing.T) {
	heads := make(chan string, 16)
	beLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { beLn.Close() })
	go func() { // a backend that reports each request's head as it came
		for {
			c, err := beLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var head strings.Builder
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						head.WriteString(line)
						if line == "\r\n" {
							break
						}
					}
					heads <- head.String()
					io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
				}
			}()
		}
	}()
	tr := &Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	var mutate atomic.Pointer[func(*http.Request)]
	_, addr := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := &http.Request{Method: r.Method, URL: r.URL, Host: r.Host, Header: r.Header, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		out = out.WithContext(r.Context())
		u := *r.URL
		u.Scheme, u.Host = "http", beLn.Addr().String()
		out.URL = &u
		(*mutate.Load())(out)
		res, err := tr.RoundTrip(out)
		if err != nil {
			if errors.Is(err, ErrRequestNotSent) {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			t.Errorf("round trip: %v", err)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		res.Body.Close()
		w.WriteHeader(res.StatusCode)
	}), func(s *Server) { s.ReuseRequests = true })

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	send := func(fields string, m func(*http.Request)) int {
		t.Helper()
		mutate.Store(&m)
		fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: gw\r\n%s\r\n", fields)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	fields := "User-Agent: test/1.0\r\nAccept: */*\r\nX-Note: a b:c\r\nCookie: k=v; t=\x80\xff\r\n"
	if code := send(fields, func(*http.Request) {}); code != http.StatusNoContent {
		t.Fatalf("forwarding the client's fields: status %d", code)
	}
	head := <-heads
	for _, line := range strings.Split(strings.TrimSuffix(fields, "\r\n"), "\r\n") {
		if !strings.Contains(head, line+"\r\n") {
			t.Errorf("the backend did not get %q:\n%s", line, head)
		}
	}

	if code := send(fields, func(r *http.Request) {
		r.Header["X-Part"] = []string{r.Header["X-Note"][0][2:]} // "b:c"
	}); code != http.StatusNoContent {
		t.Fatalf("a part of a value as a value: status %d", code)
	}
	if head := <-heads; !strings.Contains(head, "X-Part: b:c\r\n") {
		t.Errorf("the backend did not get X-Part:\n%s", head)
	}

	for what, m := range map[string]func(*http.Request){
		"a part of a value as a name": func(r *http.Request) {
			r.Header[r.Header["X-Note"][0][:3]] = []string{"v"} // "a b"
		},
		"a value with a line end": func(r *http.Request) {
			r.Header["X-Note"] = []string{r.Header["X-Note"][0] + "\r\nX-Smuggled: 1"}
		},
		"a name with a colon": func(r *http.Request) {
			r.Header[r.Header["X-Note"][0][2:]] = []string{"v"} // "b:c"
		},
	} {
		if code := send(fields, m); code != http.StatusBadGateway {
			t.Errorf("%s: status %d, want 502 (not sent)", what, code)
			<-heads
		}
	}
	select {
	case head := <-heads:
		t.Errorf("the backend got a request it should not have:\n%s", head)
	default:
	}
}
