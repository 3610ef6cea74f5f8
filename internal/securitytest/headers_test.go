package securitytest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/securitytest"
)

// spoofHeaders are header lines, spelled as an attacker would on the
// wire, that claim an identity or an origin. Their value holds "evil".
var spoofHeaders = []string{
	"X-Forwarded-For: 6.6.6.6-evil", "X-Forwarded-Host: evil.example", "X-Forwarded-Proto: evil",
	"X-Forwarded-Uri: /admin/evil", "X-Forwarded-Prefix: /evil", "X-Forwarded-Port: evil",
	"X-Forwarded-Server: evil", "Forwarded: for=evil;host=evil", "X-Real-IP: evil",
	"X-Client-IP: evil", "True-Client-IP: evil", "X-Original-URL: /admin/evil",
	"X-Original-URI: /admin/evil", "X-Rewrite-URL: /admin/evil", "X-HTTP-Method-Override: evil",
	"X-Gatehouse-Subject: evil", "x-gatehouse-groups: admins-evil", "X_Gatehouse_Groups: admins-evil",
	"X.Gatehouse.Roles: evil", "X-GATEHOUSE-SCOPES: evil", "x-GaTeHoUsE-consumer: evil",
	"X-Gatehouse-Credential: evil", "X-Gatehouse-Issuer: evil", "X-Gatehouse-Anything-New: evil",
	"X_Forwarded_For: evil", "X.Forwarded.Host: evil",
	// duplicates of the same field, in two spellings
	"X-Gatehouse-Subject: evil-dup", "x-gatehouse-subject: evil-dup2", "X-Forwarded-For: evil-dup",
	// Connection may name headers to drop: it must not drop the gateway's own.
	"Connection: X-Forwarded-For, X-Gatehouse-Subject, X-Request-Id, Traceparent",
}

// Threat: header spoofing over HTTP/1.1. A client sets the headers a
// backend trusts (the gateway's identity headers in any case or with '_'
// or '.', X-Forwarded-*, Forwarded, X-Real-IP…), duplicates them, or
// names the gateway's own headers in Connection so that they are
// dropped. No spoofed value may reach the backend, on an anonymous route
// or on an authenticated one, and the gateway's own values must arrive.
func TestHeaders_SpoofedValuesNeverReachTheBackend(t *testing.T) {
	e := newEnv(t, envOptions{})
	admin := e.token("admins")
	var checked, leaks int
	for _, route := range []struct{ name, path, auth string }{
		{"anonymous", "/public/x", ""},
		{"authenticated", "/admin/x", "Authorization: Bearer " + admin + "\r\n"},
	} {
		t.Run(route.name, func(t *testing.T) {
			e.reset()
			raw := "GET " + route.path + " HTTP/1.1\r\nHost: x\r\n" + route.auth + strings.Join(spoofHeaders, "\r\n") + "\r\n\r\n"
			x, err := sendRaw(e.gw.Addr, []byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			if len(x.Responses) != 1 || x.Responses[0].StatusCode != 200 {
				t.Fatalf("responses %v: %q", len(x.Responses), x.Raw)
			}
			e.settle()
			got := e.be.Requests()
			if len(got) != 1 {
				t.Fatalf("backend got %d requests", len(got))
			}
			r := got[0]
			for k, vs := range r.Header {
				for _, v := range vs {
					checked++
					if strings.Contains(v, "evil") {
						leaks++
						t.Errorf("spoofed %s: %q reached the backend", k, v)
					}
				}
			}
			if v := r.Header.Values("X-Forwarded-For"); len(v) != 1 || v[0] != "127.0.0.1" {
				t.Errorf("X-Forwarded-For %q, want the peer alone", v)
			}
			if r.Header.Get("X-Request-Id") == "" || r.Header.Get("Traceparent") == "" {
				t.Errorf("the gateway's own headers were dropped: %v", r.Header)
			}
			if route.auth != "" {
				if v := r.Header.Values("X-Gatehouse-Subject"); len(v) != 1 || v[0] != "mallory" {
					t.Errorf("X-Gatehouse-Subject %q, want the verified subject alone", v)
				}
				if v := r.Header.Get("X-Gatehouse-Groups"); v != "admins" {
					t.Errorf("X-Gatehouse-Groups %q", v)
				}
			}
			for _, raw := range strings.Split(string(r.Raw), "\r\n")[1:] {
				name, _, _ := strings.Cut(raw, ":")
				if strings.ContainsAny(name, "_.") {
					t.Errorf("a header with '_' or '.' in its name was forwarded: %q", raw)
				}
			}
		})
	}
	t.Logf("FIGURE header spoofing HTTP/1.1: %d spoofed lines × 2 routes, %d forwarded header values checked, %d spoofed values reached the backend", len(spoofHeaders), checked, leaks)
}

// Threat: a header line with whitespace before the colon, which some
// servers read as the header without the space (RFC 9112 §5.1: MUST be
// rejected with 400), and other malformed names.
func TestHeaders_MalformedFieldNamesAreRejected(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, line := range []string{
		"X-Gatehouse-Subject : evil", "X-Gatehouse-Subject\t: evil", " X-Gatehouse-Subject: evil",
		"X-Gatehouse Subject: evil", "X-Gatehouse-Subject\x00: evil", "X-Gatehouse-Subject\x7f: evil",
		": evil", "X-Gatehouse-\xffSubject: evil",
	} {
		e.reset()
		x, err := sendRaw(e.gw.Addr, []byte("GET /public/x HTTP/1.1\r\nHost: x\r\n"+line+"\r\n\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		e.settle()
		if len(x.Responses) != 1 || x.Responses[0].StatusCode != 400 {
			t.Errorf("%q: %d responses, want one 400: %q", line, len(x.Responses), x.Raw)
		}
		if n := len(e.be.Requests()); n != 0 {
			t.Errorf("%q: forwarded", line)
		}
	}
}

// Threat: header spoofing over HTTP/2, where names arrive lower-cased in
// HPACK and the request has pseudo-headers. Spoofed identity and
// forwarding headers are stripped as over HTTP/1.1; malformed requests
// (upper-case names, connection-specific headers, duplicate or late
// pseudo-headers) are reset by the server and never forwarded.
func TestHeaders_HTTP2SpoofingAndPseudoHeaderTricks(t *testing.T) {
	e := newEnv(t, envOptions{})
	req := []string{":method", "GET", ":scheme", "https", ":authority", "x", ":path", "/public/h2"}
	spoof := []string{
		"x-gatehouse-subject", "evil", "x_gatehouse_groups", "evil", "x.gatehouse.roles", "evil",
		"x-forwarded-for", "evil", "x-forwarded-host", "evil", "forwarded", "for=evil", "x-real-ip", "evil",
		"x-original-url", "/admin/evil", "x-gatehouse-subject", "evil-dup",
	}
	c, err := securitytest.DialH2(e.gw.TLSAddr, securitytest.TLSClientConfig(e.pool))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Request(1, true, append(append([]string(nil), req...), spoof...)...); err != nil {
		t.Fatal(err)
	}
	waitStream(c, 1)
	e.settle()
	got := e.be.Requests()
	if c.Status(1) != 200 || len(got) != 1 {
		t.Fatalf("status %d, backend got %d", c.Status(1), len(got))
	}
	for k, vs := range got[0].Header {
		for _, v := range vs {
			if strings.Contains(v, "evil") {
				t.Errorf("spoofed %s: %q reached the backend over HTTP/2", k, v)
			}
		}
	}
	malformed := []struct {
		name   string
		fields []string
	}{
		{"upper_case_name", append(append([]string(nil), req...), "X-Gatehouse-Subject", "evil")},
		{"connection_header", append(append([]string(nil), req...), "connection", "x-forwarded-for")},
		{"transfer_encoding", append(append([]string(nil), req...), "transfer-encoding", "chunked")},
		{"te_not_trailers", append(append([]string(nil), req...), "te", "gzip")},
		{"keep_alive", append(append([]string(nil), req...), "keep-alive", "1")},
		{"duplicate_path", append(append([]string(nil), req...), ":path", "/admin/x")},
		{"pseudo_after_regular", []string{":method", "GET", ":scheme", "https", "x-a", "b", ":authority", "x", ":path", "/public/h2"}},
		{"unknown_pseudo", append(append([]string(nil), req...), ":evil", "x")},
		{"response_pseudo", append(append([]string(nil), req...), ":status", "200")},
		{"path_without_slash", []string{":method", "GET", ":scheme", "https", ":authority", "x", ":path", "admin/x"}},
		{"empty_path", []string{":method", "GET", ":scheme", "https", ":authority", "x", ":path", ""}},
		{"no_path", []string{":method", "GET", ":scheme", "https", ":authority", "x"}},
		{"header_value_crlf", append(append([]string(nil), req...), "x-a", "b\r\nx-gatehouse-subject: evil")},
		{"header_name_colon", append(append([]string(nil), req...), "x-gatehouse-subject:", "evil")},
	}
	id := uint32(3)
	for _, m := range malformed {
		e.reset()
		if err := c.Request(id, true, m.fields...); err != nil {
			t.Fatal(err)
		}
		waitStream(c, id)
		code, reset := c.Reset(id)
		e.settle()
		t.Logf("%s: status %d, reset %v %v", m.name, c.Status(id), reset, code)
		if c.Status(id) == 200 || len(e.be.Requests()) != 0 {
			t.Errorf("%s: forwarded (status %d, backend got %d)", m.name, c.Status(id), len(e.be.Requests()))
		}
		id += 2
		if c.Ended() {
			c.Close()
			if c, err = securitytest.DialH2(e.gw.TLSAddr, securitytest.TLSClientConfig(e.pool)); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			id = 1
		}
	}
	t.Logf("FIGURE header spoofing HTTP/2: %d spoofed fields, %d malformed requests, none forwarded", len(spoof)/2, len(malformed))
}

// waitStream waits briefly for a response or a reset on a stream.
func waitStream(c *securitytest.H2Conn, id uint32) {
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && !c.Ended() {
		if _, reset := c.Reset(id); reset || c.Status(id) != 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
