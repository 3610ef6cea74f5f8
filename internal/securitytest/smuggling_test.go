package securitytest_test

import (
	"fmt"
	"strings"
	"testing"
)

// smuggled is the request an attacker hides in a body or after an
// ambiguous frame. The attacker has no token, so if it reaches the
// backend the gateway was desynchronized from it.
const smuggled = "GET /admin/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

// smugglingCase is one raw request stream sent on a fresh connection.
type smugglingCase struct {
	name string
	raw  string // "\n" is sent as CRLF unless bare is set
	bare bool   // send raw as is (bare LF, lone CR)
	// status of the first response; 0 means any (see the log).
	status int
	// closed says the gateway must close the connection after answering.
	closed bool
}

func smugglingCases() []smugglingCase {
	sm := strings.ReplaceAll(smuggled, "\r\n", "\n")
	chunk := fmt.Sprintf("%x", len(smuggled))
	return []smugglingCase{
		{name: "cl_te", raw: "POST / HTTP/1.1\nHost: x\nContent-Length: 6\nTransfer-Encoding: chunked\n\n0\n\n" + sm, status: 400, closed: true},
		{name: "te_cl", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nContent-Length: 60\n\n0\n\n" + sm, status: 400, closed: true},
		{name: "cl_te_body_hides_request", raw: "POST / HTTP/1.1\nHost: x\nContent-Length: 4\nTransfer-Encoding: chunked\n\n" + chunk + "\n" + sm + "\n0\n\n", status: 400, closed: true},
		{name: "cl_duplicate_differing", raw: "POST / HTTP/1.1\nHost: x\nContent-Length: 0\nContent-Length: 41\n\n" + sm, status: 400, closed: true},
		{name: "cl_duplicate_same", raw: "POST / HTTP/1.1\nHost: x\nContent-Length: 41\nContent-Length: 41\n\n" + sm, status: 400, closed: true},
		{name: "cl_list", raw: "POST / HTTP/1.1\nHost: x\nContent-Length: 41, 0\n\n" + sm, status: 400, closed: true},
		{name: "cl_empty", raw: "POST / HTTP/1.1\nHost: x\nContent-Length:\n\n" + sm, status: 400, closed: true},
		{name: "cl_plus", raw: "POST / HTTP/1.1\nHost: x\nContent-Length: +41\n\n" + sm, status: 400, closed: true},
		{name: "cl_negative", raw: "POST / HTTP/1.1\nHost: x\nContent-Length: -1\n\n" + sm, status: 400, closed: true},
		{name: "cl_hex", raw: "POST / HTTP/1.1\nHost: x\nContent-Length: 0x29\n\n" + sm, status: 400, closed: true},
		{name: "cl_huge", raw: "POST / HTTP/1.1\nHost: x\nContent-Length: 99999999999999999999999\n\n" + sm, status: 400, closed: true},
		{name: "te_trailing_space", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked \n\n0\n\n" + sm, status: 200, closed: true},
		{name: "te_xchunked", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: xchunked\n\n0\n\n" + sm, status: 400, closed: true},
		{name: "te_chunked_identity", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked, identity\n\n0\n\n" + sm, status: 400, closed: true},
		{name: "te_identity_chunked", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: identity, chunked\n\n0\n\n" + sm, status: 501, closed: true},
		{name: "te_two_fields", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nTransfer-Encoding: identity\n\n0\n\n" + sm, status: 400, closed: true},
		{name: "te_tab", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding:\tchunked\n\n0\n\n" + sm, status: 200, closed: true},
		{name: "te_case", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: cHuNkEd\n\n0\n\n" + sm, status: 200, closed: true},
		{name: "te_space_before_colon", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding : chunked\n\n0\n\n" + sm, status: 400, closed: true},
		// Go replaces obs-fold with a space (RFC 9112 §5.2 allows this or a 400):
		// the folded Transfer-Encoding is chunked, its body the smuggled line.
		{name: "te_obs_fold", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding:\n chunked\nContent-Length: 41\n\n" + sm, status: 400, closed: true},
		{name: "obs_fold_other_header", raw: "GET / HTTP/1.1\nHost: x\nX-A: a\n b\n\n" + sm, status: 400, closed: true},
		{name: "te_vertical_tab", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: \vchunked\n\n0\n\n" + sm, status: 0, closed: true},
		{name: "te_http10", raw: "POST / HTTP/1.0\nHost: x\nConnection: keep-alive\nTransfer-Encoding: chunked\n\n0\n\n" + sm, status: 0},
		{name: "bare_lf", raw: "GET /a HTTP/1.1\nHost: x\n\n" + sm, bare: true, status: 400, closed: true},
		{name: "bare_cr", raw: "GET /a HTTP/1.1\rHost: x\r\n\r\n" + smuggled, bare: true, status: 400, closed: true},
		{name: "cr_in_header_value", raw: "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n" + smuggled, bare: true, status: 400, closed: true},
		{name: "nul_in_header_value", raw: "GET /a HTTP/1.1\nHost: x\nX-A: a\x00b\n\n" + sm, status: 400, closed: true},
		{name: "chunk_size_invalid", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\nzz\n" + sm + "\n0\n\n", status: 0, closed: true},
		{name: "chunk_size_negative", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n-29\n" + sm + "\n0\n\n", status: 0, closed: true},
		{name: "chunk_size_0x", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n0x29\n" + sm + "\n0\n\n", status: 0, closed: true},
		{name: "chunk_size_overflow", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\nffffffffffffffffff29\n" + sm + "\n0\n\n", status: 0, closed: true},
		{name: "chunk_size_space", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n29 \n" + sm + "\n0\n\n", status: 0, closed: true},
		{name: "chunk_size_bare_lf", raw: "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + "\n" + smuggled + "\r\n0\r\n\r\n", bare: true, status: 0, closed: true},
		{name: "chunk_data_too_long", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n1\nAB\n0\n\n" + sm, status: 0, closed: true},
		{name: "chunk_extension", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n" + chunk + ";ext=\"x\"\n" + sm + "\n0\n\n", status: 200, closed: true},
		{name: "chunk_extension_long", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n1;" + strings.Repeat("a", 20000) + "\nx\n0\n\n", status: 0, closed: true},
		{name: "chunk_trailer_smuggles", raw: "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n0\nX-Gatehouse-Subject: admin\nContent-Length: 41\n\n" + sm, status: 200, closed: true},
		{name: "get_with_body", raw: "GET / HTTP/1.1\nHost: x\nContent-Length: 41\n\n" + sm, status: 200},
		{name: "head_with_body", raw: "HEAD / HTTP/1.1\nHost: x\nContent-Length: 41\n\n" + sm, status: 200},
		{name: "refused_request_body", raw: "POST /admin/x HTTP/1.1\nHost: x\nContent-Length: 41\n\n" + sm, status: 401},
		{name: "refused_expect_continue", raw: "POST /admin/x HTTP/1.1\nHost: x\nExpect: 100-continue\nContent-Length: 41\n\n" + sm, status: 401},
		{name: "pipelined", raw: "GET /a HTTP/1.1\nHost: x\n\n" + sm + "GET /b HTTP/1.1\nHost: x\n\n", status: 200},
		{name: "pipelined_post_then_get", raw: "POST /a HTTP/1.1\nHost: x\nContent-Length: 3\n\nabc" + sm + "GET /b HTTP/1.1\nHost: x\n\n", status: 200},
		{name: "request_line_extra_space", raw: "GET  /admin/x HTTP/1.1\nHost: x\n\n", status: 0},
		{name: "request_line_three_tokens_smuggle", raw: "GET /a HTTP/1.1 GET /admin/x HTTP/1.1\nHost: x\n\n", status: 400, closed: true},
		{name: "http09", raw: "GET /admin/x\n\n", status: 0, closed: true},
		{name: "host_duplicate", raw: "GET /a HTTP/1.1\nHost: x\nHost: y\n\n", status: 400, closed: true},
		{name: "no_host", raw: "GET /a HTTP/1.1\n\n", status: 400, closed: true},
		{name: "upgrade_h2c", raw: "GET /a HTTP/1.1\nHost: x\nConnection: Upgrade, HTTP2-Settings\nUpgrade: h2c\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\n\n" + sm, status: 0},
	}
}

// Threat: request smuggling. A request stream that the gateway and the
// backend frame differently lets an attacker slip an unauthorized request
// past the gateway (RFC 9112 §11.2). For each stream: every response the
// gateway writes parses, the backend receives only unambiguous framing,
// exactly the requests the access log says were forwarded, and never the
// smuggled /admin request.
func TestSmuggling_BackendReceivesExactlyWhatWasAuthorized(t *testing.T) {
	e := newEnv(t, envOptions{})
	var streams, bypasses, desyncs int
	for _, tc := range smugglingCases() {
		t.Run(tc.name, func(t *testing.T) {
			e.reset()
			raw := []byte(tc.raw)
			if !tc.bare {
				raw = crlf(tc.raw)
			}
			x, err := securitytestSend(e, raw)
			if err != nil {
				t.Fatal(err)
			}
			streams++
			acc := e.settle()
			statuses := make([]int, len(x.Responses))
			for i, r := range x.Responses {
				statuses[i] = r.StatusCode
			}
			t.Logf("responses %v, closed %v, backend got %d, access log %d lines", statuses, x.Closed, len(e.be.Requests()), len(acc))
			if x.Trailing != nil {
				t.Errorf("the gateway wrote bytes that are not HTTP responses: %v\n%q", x.Trailing, x.Raw)
			}
			if tc.status != 0 && (len(x.Responses) == 0 || x.Responses[0].StatusCode != tc.status) {
				t.Errorf("first status %v, want %d", statuses, tc.status)
			}
			if tc.closed && !x.Closed {
				t.Errorf("the connection stayed open after the response")
			}
			b, d := e.checkForwarded(t, acc)
			bypasses += b
			desyncs += d
		})
	}
	t.Logf("FIGURE smuggling: %d streams, %d bypasses, %d desynchronizations", streams, bypasses, desyncs)
}

func securitytestSend(e *env, raw []byte) (*securitytestExchange, error) {
	return sendRaw(e.gw.Addr, raw)
}
