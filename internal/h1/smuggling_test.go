package h1

import (
	"slices"
	"strings"
	"testing"
)

// TestServer_Smuggling sends raw byte streams, each a classic way to
// desynchronize a front end from a back end, and checks two things: the
// statuses answered, and that the handler saw exactly the well-formed
// requests before the bad one, never a request carved out of a body or
// out of a refused message.
func TestServer_Smuggling(t *testing.T) {
	const get = "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
	cases := []struct {
		name     string
		raw      string
		statuses []int
		seen     []string
	}{
		{"CL.TE: Content-Length and Transfer-Encoding",
			get + "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
			[]int{200, 400}, []string{"GET /first"}},
		{"TE.CL: Transfer-Encoding then Content-Length",
			get + "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
			[]int{200, 400}, []string{"GET /first"}},
		{"duplicate Content-Length",
			get + "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 37\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
			[]int{200, 400}, []string{"GET /first"}},
		{"obfuscated Transfer-Encoding (space before colon)",
			get + "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding : chunked\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n0\r\n\r\n",
			[]int{200, 400}, []string{"GET /first"}},
		{"obfuscated Transfer-Encoding (value)",
			get + "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, cow\r\n\r\n0\r\n\r\n",
			[]int{200, 400}, []string{"GET /first"}},
		{"obfuscated Transfer-Encoding (obs-fold)",
			get + "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
			[]int{200, 400}, []string{"GET /first"}},
		{"bare LF line endings",
			get + "GET /lf HTTP/1.1\nHost: a\n\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
			[]int{200, 400}, []string{"GET /first"}},
		{"obs-fold hides a field",
			get + "GET /fold HTTP/1.1\r\nHost: a\r\nX-A: b\r\n Transfer-Encoding: chunked\r\n\r\n",
			[]int{200, 400}, []string{"GET /first"}},
		{"chunk size with 0x prefix",
			get + "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
			[]int{200, 200}, []string{"GET /first", "POST /x !h1: malformed chunked encoding: invalid chunk extension"}},
		{"chunk data longer than its size",
			get + "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
			[]int{200, 200}, []string{"GET /first", "POST /x he !h1: malformed chunked encoding: chunk data not followed by CRLF"}},
		{"chunk size overflowing 64 bits",
			get + "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
			[]int{200, 200}, []string{"GET /first", "POST /x !h1: malformed chunked encoding: chunk size too large"}},
		{"pipelined well-formed requests are all served in order",
			get + "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /d HTTP/1.1\r\nHost: a\r\n\r\n",
			[]int{200, 200, 200, 200}, []string{"GET /first", "POST /b hello", "POST /c abc", "GET /d"}},
		{"a body that looks like a request stays a body",
			get + "POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
			[]int{200, 200}, []string{"GET /first", "POST /b GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"}},
		{"request after a refused one is never served",
			get + "GET /bad HTTP/1.1\r\nHost: a\r\nX\x00: y\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
			[]int{200, 400}, []string{"GET /first"}},
		{"Connection: close ends the connection",
			"GET /first HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n",
			[]int{200}, []string{"GET /first"}},
		{"HTTP/1.0 without keep-alive ends the connection",
			"GET /first HTTP/1.0\r\n\r\nGET /after HTTP/1.0\r\n\r\n",
			[]int{200}, []string{"GET /first"}},
		{"header too large",
			get + "GET /big HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 70<<10) + "\r\n\r\n",
			[]int{200, 431}, []string{"GET /first"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			_, addr := startServer(t, rec)
			statuses := exchange(t, addr, tc.raw)
			if !slices.Equal(statuses, tc.statuses) {
				t.Errorf("statuses %v, want %v", statuses, tc.statuses)
			}
			if got := rec.requests(); !slices.Equal(got, tc.seen) {
				t.Errorf("handler saw %q, want %q", got, tc.seen)
			}
		})
	}
}
