package h1

import (
	"context"
	"errors"
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

// Fields are written after the Header, replace its fields of the same
// names, keep their order and repeated names, and an empty User-Agent
// means none.
func TestTransport_Fields(t *testing.T) {
	seen := make(chan http.Header, 1)
	backend, _ := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() }))
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	req := newRequest(t, "GET", backend.URL, nil)
	req.Header = http.Header{"Accept": {"text/plain"}, "X-Request-Id": {"client's"}, "X-Multi": {"a", "b"}}
	req = withFields(req,
		Field{"X-Request-Id", "gateway's"},
		Field{"X-Groups", "one"},
		Field{"X-Groups", "two"},
		Field{"User-Agent", ""})
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

// Fields are checked as Header is: a bad name or value, or a framing
// field, fails the round trip before anything is sent.
func TestTransport_FieldsRefusesInjection(t *testing.T) {
	var got atomic.Int32
	backend, _ := countingBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	tr := &Transport{}
	defer tr.CloseIdleConnections()
	for _, f := range []Field{
		{"X", "v\r\nGET /smuggled HTTP/1.1"},
		{"Bad Name", "v"},
		{"Content-Length", "5"},
		{"Transfer-Encoding", "chunked"},
		{"Connection", "close"},
		{"Host", "elsewhere"},
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
	req = withFields(req, Field{"X-Request-Id", "gateway's"}, Field{"X-Groups", "one"}, Field{"X-Groups", "two"}, Field{"User-Agent", ""})
	out := WithFieldsSet(req)
	want := http.Header{"X-Request-Id": {"gateway's"}, "Accept": {"*/*"}, "X-Groups": {"one", "two"}, "User-Agent": {""}}
	if !reflect.DeepEqual(out.Header, want) {
		t.Errorf("header %v, want %v", out.Header, want)
	}
	if got := req.Header["X-Request-Id"]; len(got) != 1 || got[0] != "client's" {
		t.Errorf("the original header changed: %v", req.Header)
	}
}
