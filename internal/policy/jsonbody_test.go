package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestCheckJSONBody(t *testing.T) {
	for _, tc := range []struct {
		body        string
		field, text string // text "" when nothing is reported
	}{
		{`{}`, "", ""},
		{` [] `, "", ""},
		{`"a"`, "", ""},
		{`-0.5e-3`, "", ""},
		{`1e-400`, "", ""}, // rounds to zero, as validation decodes it
		{`1.7976931348623157e308`, "", ""},
		{`{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}`, "", ""},
		{`{"a":1,"a ":3,"\u00e9":4,"é":5}`, "/\u00e9", `property "é" is given more than once`},
		// Names that differ only in case are one name to Go's, .NET's
		// and other decoders: validated with one value, read with the
		// other.
		{`{"quantity":1,"QUANTITY":1000}`, "/QUANTITY", `property "QUANTITY" is given more than once`},
		{`{"quantity":1,"Quantity":1000}`, "/Quantity", "given more than once"},
		{`{"k":1,"\u212a":2}`, "/\u212a", "given more than once"}, // the Kelvin sign folds to k
		{`{"É":1,"é":2}`, "/é", "given more than once"},
		{"{" + manyKeys(40) + `,"Key7":1}`, "/Key7", "given more than once"}, // hashed
		{"{" + manyKeys(40) + `,"KÉY7":1}`, "", ""},
		{`{"a":1,"a":2}`, "/a", `property "a" is given more than once`},
		{`{"a":{"b":[0,{"c":1,"d":{},"c":2}]}}`, "/a/b/1/c", `property "c" is given more than once`},
		{`{"~/":1,"~/":2}`, "/~0~1", "given more than once"},
		{`{"a\"b":1,"a\u0022b":2}`, `/a"b`, `property "a\"b" is given more than once`},
		{"{\"\xff\":1,\"\xfe\":2}", "/\ufffd", "given more than once"}, // encoding/json decodes both as U+FFFD
		{`{"\ud800":1,"\udc00":2}`, "/\ufffd", "given more than once"},
		{`{"a":1,"b":2}{"a":1}`, "", "after the JSON value at byte 13"},
		{`1 2`, "", "after the JSON value at byte 2"},
		{`12xyz`, "", "after the JSON value at byte 2"},
		{`truex`, "", "after the JSON value"},
		{`{"a":1,"a":2} x`, "/a", "given more than once"}, // the first problem
		{`[1e400,{"a":1,"a":2}]`, "/0", "1e400 is out of the range of a number"},
		{`[10.0e308]`, "/0", "10.0e308 is out of the range of a number"},
		{`[0.00001e310]`, "", ""},
		{`{"n":` + strings.Repeat("9", 309) + `}`, "/n", "99999999999999999999…(309 characters) is out of the range of a number"},
		{`{"n":` + strings.Repeat("9", 308) + `}`, "", ""},
		// Not JSON up to the end of the first value: validation says so.
		{``, "", ""},
		{`   `, "", ""},
		{`{"a":1,"a":2`, "", ""},
		{`{"a":1,"a":2,}`, "", ""},
		{`[1,]`, "", ""},
		{`{"a" 1}`, "", ""},
		{`{"a":01}`, "", ""},
		{`{"a":1.}`, "", ""},
		{`{"a":1e}`, "", ""},
		{`{"a":-}`, "", ""},
		{`{"a":tru}`, "", ""},
		{`{"a":"b` + "\n" + `"}`, "", ""},
		{`{"a":"\x"}`, "", ""},
		{`{"a":"\u12"}`, "", ""},
		{`{"a":1]`, "", ""},
		{`[1}`, "", ""},
		{`{1:2}`, "", ""},
		{strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1), "", ""},
		{strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth), "", ""},
	} {
		v, bad := checkJSONBody([]byte(tc.body))
		name := tc.body
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		if tc.text == "" {
			if bad {
				t.Errorf("%s: %+v, want nothing", name, v)
			}
			continue
		}
		if !bad || v.In != "body" || v.Field != tc.field || !strings.Contains(v.Message, tc.text) {
			t.Errorf("%s: %+v (%v), want %q at %q", name, v, bad, tc.text, tc.field)
		}
	}
}

// The names checkJSONBody sees as one are those encoding/json decodes to
// one map key.
func TestCheckJSONBody_NamesAsEncodingJSONDecodes(t *testing.T) {
	for _, pair := range [][2]string{
		{`"a"`, `"\u0061"`}, {`"\/"`, `"/"`}, {`"\ud83d\ude00"`, `"😀"`}, {"\"\xc3\"", "\"\xff\""},
		{`"\ud83d"`, `"\ufffd"`}, {`"a\u0000"`, `"a\u0000"`},
	} {
		body := "{" + pair[0] + ":1," + pair[1] + ":2}"
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		if _, bad := checkJSONBody([]byte(body)); bad != (len(m) == 1) {
			t.Errorf("%s: duplicate %v, encoding/json keeps %d names", body, bad, len(m))
		}
	}
}

// Objects with many members are checked in linear time (their names are
// hashed past linearKeys), and a valid body of small objects costs no
// allocation.
func TestCheckJSONBody_Cost(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for i := range 8 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"s%d","quantity":%d,"price":1.5e2,"tags":["a","b"],"meta":{"x":null,"y":true}}`, i, i)
	}
	b.WriteString(`],"note":"caf\u00e9"}`)
	valid := b.Bytes()
	if _, bad := checkJSONBody(valid); bad {
		t.Fatal("a valid body is refused")
	}
	if n := testing.AllocsPerRun(100, func() { checkJSONBody(valid) }); n != 0 {
		t.Errorf("checking a valid body: %v allocations, want 0", n)
	}

	// 200,000 distinct names in one object, then one name again.
	b.Reset()
	b.WriteByte('{')
	for i := range 200_000 {
		fmt.Fprintf(&b, `"k%d":0,`, i)
	}
	b.WriteString(`"k123456":1}`)
	big := b.Bytes()
	v, bad := checkJSONBody(big)
	if !bad || v.Field != "/k123456" {
		t.Fatalf("%+v, want the duplicate k123456", v)
	}
	// Comparing each name with all the others takes minutes here.
	start := time.Now()
	checkJSONBody(big)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("checking a %d-byte object took %v", len(big), d)
	}
}

// checkValidatedBody reads the body that validation left behind r.GetBody
// (in place when it comes in one Write) or, without GetBody, in r.Body,
// which it puts back.
func TestCheckValidatedBody(t *testing.T) {
	body := `{"a":1,"a":2}`
	check := func(name string, r *http.Request) {
		t.Helper()
		v, bad, err := checkValidatedBody(r, &bodyChecker{})
		if err != nil || !bad || v.Field != "/a" {
			t.Errorf("%s: %+v %v %v, want the duplicate a", name, v, bad, err)
		}
	}
	r, _ := http.NewRequest("POST", "/", bytes.NewReader([]byte(body))) // GetBody set, one Write
	check("in place", r)
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(iotest.OneByteReader(strings.NewReader(body))), nil }
	check("one byte a time", r)
	r.ContentLength = -1
	check("length unknown", r)
	r.ContentLength = 1 // the first Write has the whole body, then more comes
	if _, _, err := checkValidatedBody(r, &bodyChecker{}); err == nil {
		t.Error("a body longer than its length: no error")
	}
	r.GetBody, r.Body = nil, io.NopCloser(strings.NewReader(body))
	check("no GetBody", r)
	if rest, _ := io.ReadAll(r.Body); string(rest) != body {
		t.Errorf("r.Body left %q", rest)
	}
	// The cost of reading back a valid body in place.
	r, _ = http.NewRequest("POST", "/", bytes.NewReader([]byte(`{"a":1}`)))
	var c bodyChecker
	if n := testing.AllocsPerRun(100, func() { checkValidatedBody(r, &c) }); n > 2 { // GetBody's reader
		t.Errorf("reading back a body: %v allocations", n)
	}
}

// manyKeys is n members "key0":0 … past the names compared one by one.
func manyKeys(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("%q:%d", fmt.Sprint("key", i), i)
	}
	return strings.Join(parts, ",")
}
