package gateway

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

// chunks is a body that returns its parts one Read at a time, then err.
type chunks struct {
	parts []string
	err   error
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, c.err
	}
	n := copy(p, c.parts[0])
	c.parts[0] = c.parts[0][n:]
	if c.parts[0] == "" {
		c.parts = c.parts[1:]
	}
	return n, nil
}

func (c *chunks) Close() error { return nil }

// Threat: an HTTP/2 body longer or shorter than its content-length. The
// proxy copies exactly Content-Length bytes, so without care the backend
// would see a complete request before the surplus made it malformed. The
// reader holds back the last declared byte until the body has ended.
func TestBodyReader_DeclaredLength(t *testing.T) {
	cases := []struct {
		name     string
		declared int64
		parts    []string
		end      error
		want     string
		err      error // of the read that completes the declared length
	}{
		{"exact", 5, []string{"hel", "lo"}, io.EOF, "hello", nil},
		{"exact_one_read", 5, []string{"hello"}, io.EOF, "hello", nil},
		{"longer", 5, []string{"hello", "smuggled"}, io.EOF, "hell", errBodyTooLong},
		{"shorter", 5, []string{"hel"}, io.EOF, "hel", errBodyTooShort},
		{"client_error", 5, []string{"hello"}, errors.New("stream reset"), "hell", errors.New("stream reset")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := &bodyReader{ReadCloser: &chunks{parts: append([]string(nil), tc.parts...), err: tc.end}, remaining: tc.declared}
			// The proxy reads through io.LimitReader(body, ContentLength).
			got, err := io.ReadAll(io.LimitReader(b, tc.declared))
			if string(got) != tc.want {
				t.Errorf("read %q, want %q", got, tc.want)
			}
			if (err == nil) != (tc.err == nil) || err != nil && err.Error() != tc.err.Error() {
				t.Errorf("error %v, want %v", err, tc.err)
			}
			if tc.err != nil && b.err == nil {
				t.Error("the failure was not recorded")
			}
		})
	}
	// Undeclared length: plain pass-through.
	b := &bodyReader{ReadCloser: io.NopCloser(iotest.OneByteReader(strings.NewReader("abc"))), remaining: -1}
	if got, err := io.ReadAll(b); string(got) != "abc" || err != nil {
		t.Fatalf("%q %v", got, err)
	}
}

func TestCheckDeclaredLength(t *testing.T) {
	for _, tc := range []struct {
		proto int
		cl    []string
		n     int64
		ok    bool
	}{
		{2, nil, -1, true}, {2, []string{"5"}, 5, true}, {2, []string{"5, 41"}, 0, false},
		{2, []string{"5", "5"}, 5, false}, {2, []string{"+5"}, 5, false}, {2, []string{""}, 0, false},
		{2, []string{"99999999999999999999"}, 0, false}, {1, []string{"garbage"}, 0, true},
	} {
		r := &http.Request{ProtoMajor: tc.proto, Header: http.Header{}, ContentLength: tc.n}
		if tc.cl != nil {
			r.Header["Content-Length"] = tc.cl
		}
		if err := checkDeclaredLength(r); (err == nil) != tc.ok {
			t.Errorf("HTTP/%d content-length %q: %v", tc.proto, tc.cl, err)
		}
	}
}
