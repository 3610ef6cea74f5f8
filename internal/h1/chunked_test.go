package h1

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func decodeChunked(in string, keepTrailer bool) (string, *chunkedReader, error) {
	var r reader
	r.reset(strings.NewReader(in))
	var cr chunkedReader
	cr.reset(&r, keepTrailer, 1024)
	b, err := io.ReadAll(&cr)
	return string(b), &cr, err
}

// TestChunked_Accepts lists chunked bodies that must decode.
func TestChunked_Accepts(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"},
		{"several chunks", "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", "hello"},
		{"upper and lower hex", "a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", "01234567890123456789"},
		{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello"},
		{"empty body", "0\r\n\r\n", ""},
		{"extension", "5;name\r\nhello\r\n0;a=b\r\n\r\n", "hello"},
		{"extension with quoted value", "5;name=\"v;\\\"x\"\r\nhello\r\n0\r\n\r\n", "hello"},
		{"extensions with whitespace", "5 ; a = b ;c\r\nhello\r\n0\r\n\r\n", "hello"},
		{"trailer", "5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n", "hello"},
		{"binary data with CRLF inside", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, cr, err := decodeChunked(tc.in, false)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if !cr.done() {
				t.Errorf("not done")
			}
		})
	}
}

// TestChunked_Refuses lists chunked bodies that must be refused, named
// after what accepting them would allow.
func TestChunked_Refuses(t *testing.T) {
	cases := []struct{ name, in string }{
		{"smuggling: size with 0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"},
		{"smuggling: negative size", "-5\r\nhello\r\n0\r\n\r\n"},
		{"smuggling: plus sign", "+5\r\nhello\r\n0\r\n\r\n"},
		{"smuggling: empty size", "\r\nhello\r\n0\r\n\r\n"},
		{"smuggling: space before size", " 5\r\nhello\r\n0\r\n\r\n"},
		{"smuggling: whitespace after size", "5 \r\nhello\r\n0\r\n\r\n"},
		{"smuggling: size overflowing 64 bits", "10000000000000005\r\nhello\r\n0\r\n\r\n"},
		{"smuggling: bare LF after size", "5\nhello\r\n0\r\n\r\n"},
		{"smuggling: bare LF after data", "5\r\nhello\n0\r\n\r\n"},
		{"smuggling: data longer than size", "3\r\nhello\r\n0\r\n\r\n"},
		{"smuggling: data shorter than size", "7\r\nhello\r\n0\r\n\r\n"},
		{"smuggling: bare CR after data", "5\r\nhello\r0\r\n\r\n"},
		{"smuggling: bare LF in last chunk", "5\r\nhello\r\n0\n\r\n"},
		{"smuggling: bare LF ending trailers", "5\r\nhello\r\n0\r\n\n"},
		{"smuggling: extension without name", "5;\r\nhello\r\n0\r\n\r\n"},
		{"smuggling: extension with bare CR", "5;a\rb\r\nhello\r\n0\r\n\r\n"},
		{"smuggling: extension with LF in quotes", "5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n"},
		{"smuggling: unterminated quoted extension", "5;a=\"x\r\nhello\r\n0\r\n\r\n"},
		{"smuggling: garbage after size", "5x\r\nhello\r\n0\r\n\r\n"},
		{"smuggling: obs-fold in trailer", "0\r\nX: a\r\n b\r\n\r\n"},
		{"smuggling: trailer without colon", "0\r\nnocolon\r\n\r\n"},
		{"smuggling: space before colon in trailer", "0\r\nX : a\r\n\r\n"},
		{"resource exhaustion: extension line too long", "5;" + strings.Repeat("a", 5000) + "\r\nhello\r\n0\r\n\r\n"},
		{"resource exhaustion: trailer section too large", "0\r\n" + strings.Repeat("X-A: "+strings.Repeat("b", 100)+"\r\n", 20) + "\r\n"},
		{"truncated: no last chunk", "5\r\nhello\r\n"},
		{"truncated: in data", "5\r\nhel"},
		{"truncated: in trailers", "0\r\nX: a\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeChunked(tc.in, false)
			if err == nil {
				t.Fatalf("accepted")
			}
			if !errors.Is(err, ErrChunked) && err != io.ErrUnexpectedEOF {
				t.Errorf("error %v is neither ErrChunked nor ErrUnexpectedEOF", err)
			}
		})
	}
}

// TestChunked_KeepsAllowedTrailers checks that trailers reach the caller
// when asked, without framing fields.
func TestChunked_KeepsAllowedTrailers(t *testing.T) {
	_, cr, err := decodeChunked("1\r\na\r\n0\r\nx-sum: 1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nX-Sum: 2\r\n\r\n", true)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cr.trailer["X-Sum"], ","); got != "1,2" {
		t.Errorf("X-Sum = %q", got)
	}
	if _, ok := cr.trailer["Content-Length"]; ok {
		t.Errorf("framing field kept in trailers")
	}
	if _, ok := cr.trailer["Transfer-Encoding"]; ok {
		t.Errorf("framing field kept in trailers")
	}
}

// TestChunked_ByteAtATime decodes input that arrives one byte per read,
// so that every state boundary falls between reads.
func TestChunked_ByteAtATime(t *testing.T) {
	in := "3;x=\"y\"\r\nhel\r\n2\r\nlo\r\n0\r\nX: y\r\n\r\nNEXT"
	var r reader
	r.reset(iotest.OneByteReader(strings.NewReader(in)))
	var cr chunkedReader
	cr.reset(&r, true, 1024)
	got, err := io.ReadAll(iotest.OneByteReader(&cr))
	if err != nil || string(got) != "hello" {
		t.Fatalf("got %q, %v", got, err)
	}
	rest, _ := io.ReadAll(&r)
	if string(rest) != "NEXT" {
		t.Errorf("decoder consumed past the body: left %q", rest)
	}
}

func TestChunkHeader(t *testing.T) {
	if got := string(chunkHeader(nil, 255)); got != "ff\r\n" {
		t.Errorf("got %q", got)
	}
	if !bytes.Equal(chunkHeader(nil, 0), []byte("0\r\n")) {
		t.Errorf("zero")
	}
}
