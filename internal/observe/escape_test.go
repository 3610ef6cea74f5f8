package observe

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// appendEscaped's output, quoted, decodes as JSON to the input with each
// invalid UTF-8 byte replaced by U+FFFD, whatever the bytes that need
// escaping and wherever they fall against the 8-byte words it skips.
func TestAppendEscaped(t *testing.T) {
	alphabet := []string{"a", "Z", "0", " ", "~", "\"", "\\", "\n", "\r", "\t", "\x00", "\x01", "\x1f", "\x7f", "é", "€", "\xff", "\xc3", "<", "&"}
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []string{"", "plain ascii text of some length", strings.Repeat("x", 64) + "\"", "1234567\"", "12345678\n", "\xff\xfe",
		"123456789\"12345", "1234567890\né", "\"234567890123", "abcdefgh\xc3"}
	for range 50000 {
		var b strings.Builder
		for range rng.IntN(40) {
			if rng.IntN(4) == 0 {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			} else {
				b.WriteByte(byte('a' + rng.IntN(26)))
			}
		}
		cases = append(cases, b.String())
	}
	for _, s := range cases {
		out := appendEscaped(nil, s)
		var got string
		if err := json.Unmarshal(append(append([]byte{'"'}, out...), '"'), &got); err != nil {
			t.Fatalf("%q: escaped as %q, not a JSON string: %v", s, out, err)
		}
		var want strings.Builder
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			want.WriteRune(r) // RuneError for an invalid byte, n == 1
			i += n
		}
		if got != want.String() {
			t.Fatalf("%q: escaped as %q, decodes to %q, want %q", s, out, got, want.String())
		}
	}
}
