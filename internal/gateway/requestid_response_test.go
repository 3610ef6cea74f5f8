package gateway_test

import (
	"io"
	"net/http"
	"regexp"
	"testing"
)

// requestIDConfig has an anonymous API, and two whose response-headers
// transform removes the request ID field or sets a value of its own.
const requestIDConfig = `
backends:
  - name: be
    instances: [{url: "{{.Backend}}"}]
apis:
  - name: public
    path_prefix: /public
    backend: be
    auth: {anonymous: true}
  - name: removed
    path_prefix: /removed
    backend: be
    auth: {anonymous: true}
    transforms:
      response_headers: {remove: [X-Request-Id]}
  - name: replaced
    path_prefix: /replaced
    backend: be
    auth: {anonymous: true}
    transforms:
      response_headers: {set: {X-Request-Id: from-the-transform}}
  - name: limited
    path_prefix: /limited
    backend: be
    auth: {anonymous: true}
    rate_limits:
      - {name: per-ip, rate: 1000, period: 1m, key: [ip]}
  - name: limited-unlabelled
    path_prefix: /unlabelled
    backend: be
    auth: {anonymous: true}
    rate_limits:
      - {name: per-ip, rate: 1000, period: 1m, key: [ip]}
    transforms:
      response_headers: {remove: [RateLimit], set: {RateLimit-Policy: from-the-transform}}
`

var newRequestID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestRequestID_OnEveryResponse: every response carries the request ID
// once, whether its fields go to h1's server as lines (the ID then as
// their extra field) or through a header map: a forwarded response,
// the backend's own ID dropped; one the backend sends with no fields
// (the ID is its only field); an error; a response the backend gives no
// body. A response-headers transform that removes the field or sets its
// own value keeps its word, as when the ID was set before any step ran.
func TestRequestID_OnEveryResponse(t *testing.T) {
	servers(t, testRequestIDOnEveryResponse)
}

func testRequestIDOnEveryResponse(t *testing.T, serve func(*harness)) {
	h := newHarness(t, requestIDConfig, nil)
	serve(h)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/public/bare":
			// No field at all: the gateway's ID is the head's only one.
			w.Header()["Date"] = nil
			w.Header()["Content-Type"] = nil
			w.WriteHeader(http.StatusNoContent)
		case "/public/own-id":
			w.Header().Set("X-Request-Id", "the-backends")
			io.WriteString(w, "ok")
		default:
			w.Header().Set("X-Kept", "yes")
			io.WriteString(w, "ok")
		}
	}
	for _, tc := range []struct {
		name, path, clientID string
		status               int
		want                 string // "" for none, "new" for a new ID
	}{
		{"forwarded, the client's ID", "/public/x", "client-id-1", 200, "client-id-1"},
		{"forwarded, a new ID", "/public/x", "", 200, "new"},
		{"forwarded, the backend's ID dropped", "/public/own-id", "client-id-2", 200, "client-id-2"},
		{"forwarded, no field but the ID", "/public/bare", "client-id-3", 204, "client-id-3"},
		{"an error: no route", "/nowhere", "client-id-4", 404, "client-id-4"},
		{"removed by a transform", "/removed/x", "client-id-5", 200, ""},
		{"replaced by a transform", "/replaced/x", "client-id-6", 200, "from-the-transform"},
	} {
		hdr := map[string]string{}
		if tc.clientID != "" {
			hdr["X-Request-Id"] = tc.clientID
		}
		for i := range 2 { // the second on a kept-alive connection, its state reused
			res := h.do("GET", tc.path, hdr, nil)
			readBody(t, res)
			if res.StatusCode != tc.status {
				t.Errorf("%s (%d): status %d, want %d", tc.name, i, res.StatusCode, tc.status)
			}
			got := res.Header.Values("X-Request-Id")
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("%s (%d): X-Request-Id %q, want none", tc.name, i, got)
			case tc.want == "new" && (len(got) != 1 || !newRequestID.MatchString(got[0])):
				t.Errorf("%s (%d): X-Request-Id %q, want one new ID", tc.name, i, got)
			case tc.want != "" && tc.want != "new" && (len(got) != 1 || got[0] != tc.want):
				t.Errorf("%s (%d): X-Request-Id %q, want [%s]", tc.name, i, got, tc.want)
			}
			if tc.path == "/public/x" && res.Header.Get("X-Kept") != "yes" {
				t.Errorf("%s (%d): the backend's field is missing: %v", tc.name, i, res.Header)
			}
		}
	}
}

// TestResponseFields_OfSteps: the rate-limit fields a step leaves in the
// exchange reach the client once each, before the backend's own fields
// of the same name, whether the response's fields go to h1's server as
// lines or through a header map; a response-headers transform that
// removes or replaces them keeps its word.
func TestResponseFields_OfSteps(t *testing.T) {
	servers(t, testResponseFieldsOfSteps)
}

func testResponseFieldsOfSteps(t *testing.T, serve func(*harness)) {
	h := newHarness(t, requestIDConfig, nil)
	serve(h)
	h.backend.handler = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Ratelimit-Policy", "the-backends")
		io.WriteString(w, "ok")
	}
	policy := regexp.MustCompile(`^"per-ip";q=1000;w=60$`)
	limit := regexp.MustCompile(`^"per-ip";r=99[0-9];t=[0-9]+$`)
	for i := range 3 { // the later ones on a kept-alive connection, its state reused
		res := h.do("GET", "/limited/x", nil, nil)
		readBody(t, res)
		if got := res.Header.Values("Ratelimit-Policy"); len(got) != 2 || !policy.MatchString(got[0]) || got[1] != "the-backends" {
			t.Errorf("(%d) RateLimit-Policy %q, want the gateway's then the backend's", i, got)
		}
		if got := res.Header.Values("Ratelimit"); len(got) != 1 || !limit.MatchString(got[0]) {
			t.Errorf("(%d) RateLimit %q, want one", i, got)
		}
		if got := res.Header.Values("X-Request-Id"); len(got) != 1 || !newRequestID.MatchString(got[0]) {
			t.Errorf("(%d) X-Request-Id %q, want one new ID", i, got)
		}

		res = h.do("GET", "/unlabelled/x", nil, nil)
		readBody(t, res)
		if got := res.Header.Values("Ratelimit"); len(got) != 0 {
			t.Errorf("(%d) RateLimit %q after the transform removed it", i, got)
		}
		if got := res.Header.Values("Ratelimit-Policy"); len(got) != 1 || got[0] != "from-the-transform" {
			t.Errorf("(%d) RateLimit-Policy %q, want the transform's", i, got)
		}
	}
}
