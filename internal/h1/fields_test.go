package h1

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync/atomic"
	"testing"
)

// fieldsCtx answers FieldsKey itself, as the gateway's request state does.
type fieldsCtx struct {
	context.Context
	f *Fields
}

func (c fieldsCtx) Value(key any) any {
	if key == FieldsKey {
		return c.f
	}
	return c.Context.Value(key)
}

func withFields(req *http.Request, f ...Field) *http.Request {
	fs := Fields(f)
	return req.WithContext(fieldsCtx{req.Context(), &fs})
}

// headerEcho returns a transport, a request to a backend, and the channel
// on which the backend sends the header of each request it gets.
func headerEcho(t *testing.T) (*Transport, *http.Request, chan http.Header) {
	seen := make(chan http.Header, 1)
	backend, _ := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() }))
	tr := &Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return tr, newRequest(t, "GET", backend.URL, nil), seen
}

// Fields are written after the Header, replace its fields of the same
// names, keep their order and repeated names, and an empty User-Agent
// means none; Checked ones (which skip the checks) the same way.
func TestTransport_Fields(t *testing.T) {
	for _, checked := range []bool{false, true} {
		t.Run(fmt.Sprintf("checked=%v", checked), func(t *testing.T) { testTransportFields(t, checked) })
	}
}

func testTransportFields(t *testing.T, checked bool) {
	tr, req, seen := headerEcho(t)
	req.Header = http.Header{"Accept": {"text/plain"}, "X-Request-Id": {"client's"}, "X-Multi": {"a", "b"}}
	req = withFields(req,
		Field{Name: "X-Request-Id", Value: "gateway's", Checked: checked},
		Field{Name: "X-Groups", Value: "one", Checked: checked},
		Field{Name: "X-Groups", Value: "two", Checked: checked},
		Field{Name: "User-Agent", Value: "", Checked: checked})
	roundTrip(t, tr, req)
	h := <-seen
	want := http.Header{
		"Accept":          {"text/plain"},
		"X-Multi":         {"a", "b"},
		"X-Request-Id":    {"gateway's"},
		"X-Groups":        {"one", "two"},
		"Accept-Encoding": h["Accept-Encoding"], // whatever net/http's test server saw, if anything
	}
	if h["Accept-Encoding"] == nil {
		delete(want, "Accept-Encoding")
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("backend saw %v, want %v", h, want)
	}
}

// A Checked Lines field's lines are written as they are, in the Fields'
// order; it replaces no Header field (its lines' names are the caller's
// to keep out of the Header). An unchecked one fails the round trip
// before anything is sent. WithFieldsSet sets its lines in the copy.
func TestTransport_FieldsLines(t *testing.T) {
	tr, req, seen := headerEcho(t)
	req.Header = http.Header{"Accept": {"text/plain"}, "X-Id-Subject": {"client's"}}
	lines := Field{Value: "X-Id-Subject: alice\r\nX-Id-Groups: a,b\r\nX-Id-Groups: c\r\n", Lines: true, Checked: true}
	roundTrip(t, tr, withFields(req, Field{Name: "X-Request-Id", Value: "r1"}, lines, Field{Name: "X-After", Value: "1"}))
	h := <-seen
	delete(h, "Accept-Encoding") // net/http's test server's own, if any
	want := http.Header{"Accept": {"text/plain"}, "X-Id-Subject": {"client's", "alice"}, "X-Id-Groups": {"a,b", "c"}, "X-Request-Id": {"r1"}, "X-After": {"1"}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("backend saw %v, want %v", h, want)
	}

	https, _ := http.NewRequest("GET", "https://example.test/", nil)
	https.Header = http.Header{"Accept": {"*/*"}}
	out := WithFieldsSet(withFields(https, lines, Field{Value: "X-Unchecked: 1\r\n", Lines: true}))
	if want := (http.Header{"Accept": {"*/*"}, "X-Id-Subject": {"alice"}, "X-Id-Groups": {"a,b", "c"}}); !reflect.DeepEqual(out.Header, want) {
		t.Errorf("WithFieldsSet: header %v, want %v", out.Header, want)
	}

	var got atomic.Int32
	backend, _ := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	req2 := withFields(newRequest(t, "GET", backend.URL, nil), Field{Value: "X-Id-Subject: alice\r\n", Lines: true})
	if _, err := tr.RoundTrip(req2); !errors.Is(err, ErrRequestNotSent) {
		t.Errorf("an unchecked Lines field: got %v", err)
	}
	if got.Load() != 0 {
		t.Errorf("backend saw %d requests", got.Load())
	}
}

// Fields are checked as Header is: a bad name or value, or a framing
// field, fails the round trip before anything is sent.
func TestTransport_FieldsRefusesInjection(t *testing.T) {
	var got atomic.Int32
	backend, _ := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for _, f := range []Field{
		{Name: "X", Value: "v\r\nGET /smuggled HTTP/1.1"},
		{Name: "Bad Name", Value: "v"},
		{Name: "Content-Length", Value: "5"},
		{Name: "Transfer-Encoding", Value: "chunked"},
		{Name: "Connection", Value: "close"},
		{Name: "Host", Value: "elsewhere"},
	} {
		req := withFields(newRequest(t, "GET", backend.URL, nil), f)
		if _, err := tr.RoundTrip(req); !errors.Is(err, ErrRequestNotSent) {
			t.Errorf("%q: got %v", f.Name, err)
		}
	}
	if got.Load() != 0 {
		t.Errorf("backend saw %d requests", got.Load())
	}
}

// WithFieldsSet gives another transport a copy of the Header with the
// Fields set, and leaves the request it was given alone.
func TestWithFieldsSet(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://example.test/", nil)
	if WithFieldsSet(req) != req {
		t.Fatal("a request without Fields was copied")
	}
	req.Header = http.Header{"X-Request-Id": {"client's"}, "Accept": {"*/*"}}
	req = withFields(req, Field{Name: "X-Request-Id", Value: "gateway's"}, Field{Name: "X-Groups", Value: "one"}, Field{Name: "X-Groups", Value: "two"}, Field{Name: "User-Agent", Value: ""})
	out := WithFieldsSet(req)
	want := http.Header{"X-Request-Id": {"gateway's"}, "Accept": {"*/*"}, "X-Groups": {"one", "two"}, "User-Agent": {""}}
	if !reflect.DeepEqual(out.Header, want) {
		t.Errorf("header %v, want %v", out.Header, want)
	}
	if got := req.Header["X-Request-Id"]; len(got) != 1 || got[0] != "client's" {
		t.Errorf("the original header changed: %v", req.Header)
	}
}

// An Omit field writes nothing and keeps the Header's fields of its name
// out, whatever the name (a framing or hop-by-hop one included): the
// caller shares the client's Header and leaves out what it must not
// forward, and the Header itself is not changed.
func TestTransport_FieldsOmit(t *testing.T) {
	tr, req, seen := headerEcho(t)
	shared := http.Header{"Accept": {"text/plain"}, "Authorization": {"Bearer secret"}, "Connection": {"X-Hop"}, "X-Hop": {"1"}, "X-Request-Id": {"client's"}}
	req.Header = shared
	req = withFields(req,
		Field{Name: "Authorization", Omit: true},
		Field{Name: "Connection", Omit: true},
		Field{Name: "X-Hop", Omit: true},
		Field{Name: "Transfer-Encoding", Omit: true},
		Field{Name: "X-Request-Id", Value: "gateway's"},
		Field{Name: "X-Request-Id", Omit: true})
	roundTrip(t, tr, req)
	h := <-seen
	delete(h, "Accept-Encoding") // net/http's test server's own, if any
	want := http.Header{"Accept": {"text/plain"}, "X-Request-Id": {"gateway's"}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("backend saw %v, want %v", h, want)
	}
	if len(shared) != 5 || shared.Get("Authorization") != "Bearer secret" {
		t.Errorf("the shared header changed: %v", shared)
	}
}

// sends answers whether a field goes out: from the Header unless the
// Fields name it, or from a Field that is not an Omit.
func TestFieldsSends(t *testing.T) {
	req, _ := http.NewRequest("POST", "http://example.test/", nil)
	req.Header = http.Header{"Idempotency-Key": {"k"}}
	for _, c := range []struct {
		f    Fields
		name string
		want bool
	}{
		{nil, "Idempotency-Key", true},
		{nil, "X-Idempotency-Key", false},
		{Fields{{Name: "Idempotency-Key", Omit: true}}, "Idempotency-Key", false},
		{Fields{{Name: "X-Idempotency-Key", Value: "k"}}, "X-Idempotency-Key", true},
		{Fields{{Name: "Idempotency-Key", Omit: true}, {Name: "Idempotency-Key", Value: "k2"}}, "Idempotency-Key", true},
		{Fields{{Name: "X-Other", Omit: true}}, "Idempotency-Key", true},
	} {
		if got := sends(withFields(req, c.f...), c.name); got != c.want {
			t.Errorf("%v sends %s = %v, want %v", c.f, c.name, got, c.want)
		}
	}
}

// WithFieldsSet leaves an omitted field out of the copy.
func TestWithFieldsSetOmits(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://example.test/", nil)
	req.Header = http.Header{"Authorization": {"Bearer secret"}, "Accept": {"*/*"}}
	out := WithFieldsSet(withFields(req, Field{Name: "Authorization", Omit: true}, Field{Name: "X-Gone", Omit: true}))
	if want := (http.Header{"Accept": {"*/*"}}); !reflect.DeepEqual(out.Header, want) {
		t.Errorf("header %v, want %v", out.Header, want)
	}
	if req.Header.Get("Authorization") == "" {
		t.Error("the original header changed")
	}
}

// The Header's fields that Fields name are left out however many names
// there are, including names that share a NameBit (same length, same
// last byte) with a Field's and are not it: a reference built by
// comparing every name says what the backend must see.
func TestTransport_FieldsOverManyNames(t *testing.T) {
	tr, req0, seen := headerEcho(t)
	// X-Aa…X-Az share a length and differ in the last byte; X-Ba…X-Bz
	// share each bit with one of them.
	var header []string
	for c := 'a'; c <= 'z'; c++ {
		header = append(header, "X-A"+string(c), "X-B"+string(c))
	}
	for round := range 20 {
		req := req0.Clone(req0.Context())
		req.Header = http.Header{}
		for i, k := range header {
			if (i+round)%3 != 0 {
				req.Header[k] = []string{"client's " + k}
			}
		}
		var fs []Field
		for i, k := range header {
			switch (i*7 + round) % 5 {
			case 0:
				fs = append(fs, Field{Name: "X-A" + k[3:], Value: "gateway's", Checked: true})
			case 1:
				fs = append(fs, Field{Name: k, Omit: true})
			}
		}
		want := http.Header{}
		for k, vs := range req.Header {
			if !Fields(fs).has(k) {
				want[k] = vs
			}
		}
		for _, f := range fs {
			if !f.Omit {
				want[f.Name] = append(want[f.Name], f.Value)
			}
		}
		roundTrip(t, tr, withFields(req, fs...))
		h := <-seen
		delete(h, "Accept-Encoding") // net/http's test server's own, if any
		if !reflect.DeepEqual(h, want) {
			t.Fatalf("round %d: backend saw %v, want %v", round, h, want)
		}
	}
}

// filterCtx answers FieldsKey and FieldFilterKey itself, as the
// gateway's request state does.
type filterCtx struct {
	context.Context
	f      *Fields
	filter FieldFilter
}

func (c filterCtx) Value(key any) any {
	switch key {
	case FieldsKey:
		return c.f
	case FieldFilterKey:
		return c.filter
	}
	return c.Context.Value(key)
}

// dropNames is a FieldFilter that leaves out the names it holds, and
// counts the names it was asked about.
type dropNames struct {
	drop  map[string]bool
	asked map[string]int
}

func (d *dropNames) SendField(name string) bool {
	d.asked[name]++
	return !d.drop[name]
}

func withFilter(req *http.Request, filter FieldFilter, f ...Field) *http.Request {
	fs := Fields(f)
	return req.WithContext(filterCtx{req.Context(), &fs, filter})
}

// A FieldFilter leaves Header fields out; the Fields are written whatever
// it says of their names, and a Header field they replace is not asked
// about. The Header is not changed.
func TestTransport_FieldFilter(t *testing.T) {
	tr, req, seen := headerEcho(t)
	shared := http.Header{"Accept": {"text/plain"}, "X-Spoofed": {"client's"}, "X-Hop": {"1"}, "X-Replaced": {"client's"}, "X-Multi": {"a", "b"}}
	req.Header = shared
	d := &dropNames{drop: map[string]bool{"X-Spoofed": true, "X-Hop": true, "X-Replaced": true, "X-Gateway": true}, asked: map[string]int{}}
	roundTrip(t, tr, withFilter(req, d,
		Field{Name: "X-Replaced", Value: "gateway's"},
		Field{Name: "X-Gateway", Value: "gateway's", Checked: true}))
	h := <-seen
	delete(h, "Accept-Encoding") // net/http's test server's own, if any
	want := http.Header{"Accept": {"text/plain"}, "X-Multi": {"a", "b"}, "X-Replaced": {"gateway's"}, "X-Gateway": {"gateway's"}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("backend saw %v, want %v", h, want)
	}
	if d.asked["X-Replaced"] != 0 || d.asked["X-Gateway"] != 0 || d.asked["Accept"] != 1 || d.asked["X-Spoofed"] != 1 {
		t.Errorf("filter asked %v", d.asked)
	}
	if len(shared) != 5 || shared.Get("X-Spoofed") != "client's" {
		t.Errorf("the shared header changed: %v", shared)
	}
}

// WithFieldsSet applies the FieldFilter as the Transport does, and with a
// filter alone still copies the Header.
func TestWithFieldsSet_FieldFilter(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://example.test/", nil)
	req.Header = http.Header{"Accept": {"*/*"}, "X-Spoofed": {"client's"}, "X-Replaced": {"client's"}}
	d := &dropNames{drop: map[string]bool{"X-Spoofed": true, "X-Replaced": true}, asked: map[string]int{}}
	out := WithFieldsSet(withFilter(req, d, Field{Name: "X-Replaced", Value: "gateway's"}))
	if want := (http.Header{"Accept": {"*/*"}, "X-Replaced": {"gateway's"}}); !reflect.DeepEqual(out.Header, want) {
		t.Errorf("header %v, want %v", out.Header, want)
	}
	if out = WithFieldsSet(withFilter(req, d)); out == req {
		t.Fatal("a request with a filter alone was not copied")
	}
	if want := (http.Header{"Accept": {"*/*"}}); !reflect.DeepEqual(out.Header, want) {
		t.Errorf("filter alone: header %v, want %v", out.Header, want)
	}
	if len(req.Header) != 3 {
		t.Errorf("the original header changed: %v", req.Header)
	}
}

// A Header field the FieldFilter leaves out is not sent, for retrying as
// for writing: a POST's idempotency key the filter drops does not make it
// safe to send again.
func TestSends_FieldFilter(t *testing.T) {
	req, _ := http.NewRequest("POST", "http://example.test/", nil)
	req.Header = http.Header{"Idempotency-Key": {"k"}}
	keep := &dropNames{drop: map[string]bool{}, asked: map[string]int{}}
	drop := &dropNames{drop: map[string]bool{"Idempotency-Key": true}, asked: map[string]int{}}
	for _, c := range []struct {
		req  *http.Request
		want bool
	}{
		{req, true},
		{withFilter(req, keep), true},
		{withFilter(req, drop), false},
		{withFilter(req, drop, Field{Name: "Idempotency-Key", Value: "gateway's"}), true},
	} {
		if got := sends(c.req, "Idempotency-Key"); got != c.want {
			t.Errorf("sends = %v, want %v (filter %v)", got, c.want, FieldFilterFrom(c.req.Context()))
		}
	}
}
