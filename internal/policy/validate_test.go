package policy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
)

// tagsStep validates POST /tags, whose body is an array of strings.
func tagsStep(t *testing.T) Step {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData([]byte(`
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /tags:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: array, items: {type: string}}
      responses: {"200": {description: ok}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	item := doc.Paths.Value("/tags")
	route := &routers.Route{Spec: doc, Path: "/tags", PathItem: item, Method: "POST", Operation: item.Post}
	return ValidateRequest(ValidateOptions{Routes: []OpenAPIRoute{{Method: "POST", Route: route}}})
}

func numbers(n int) []byte {
	return []byte("[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]")
}

// A small body lists its violations (up to MaxViolations); a large one is
// refused at its first: listing all of them cost without bound (a 10 MB
// array of the wrong type gave millions of errors, gigabytes allocated).
func TestValidateRequest_ListsViolationsOfSmallBodiesOnly(t *testing.T) {
	step := tagsStep(t)
	post := func(body []byte) *Error {
		r := request("POST", "/tags", "192.0.2.1", nil, map[string]string{"Content-Type": "application/json"})
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		_, pe, passed := run(step, r)
		if passed || pe == nil || pe.Status != http.StatusBadRequest {
			t.Fatalf("a body of %d bytes: passed %v, error %+v; want 400", len(body), passed, pe)
		}
		return pe
	}
	if vs := post(numbers(50)).Extensions["errors"].([]Violation); len(vs) != MaxViolations {
		t.Fatalf("a small body: %d violations, want %d", len(vs), MaxViolations)
	}
	big := numbers(500_000) // 1 MB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	vs := post(big).Extensions["errors"].([]Violation)
	runtime.ReadMemStats(&after)
	if len(vs) != 1 || vs[0].In != "body" {
		t.Fatalf("a 1 MB body: violations %+v, want its first", vs)
	}
	// Decoding the body alone takes some 30 MB here; listing its 500,000
	// violations took over 1.5 GB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 200<<20 {
		t.Fatalf("validating a 1 MB body allocated %d MB", alloc>>20)
	}
}

// shopSpec is the tester's document: limit takes one integer of at most
// 50, tags (exploded) and ids (not exploded) are arrays, the body is an
// object that refuses unknown properties.
const shopSpec = `
info: {title: shop, version: "1"}
paths:
  /orders:
    post:
      parameters:
        - {name: limit, in: query, schema: {type: integer, maximum: 50}}
        - {name: tags, in: query, schema: {type: array, items: {type: string}}}
        - {name: ids, in: query, explode: false, schema: {type: array, items: {type: integer}}}
        - {name: X-Tenant, in: header, schema: {type: string, pattern: "^[a-z]+$"}}
        - {name: X-Labels, in: header, schema: {type: array, items: {type: string}}}
        - {name: session, in: cookie, schema: {type: string, pattern: "^[a-z]+$"}}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              properties:
                item: {type: string}
                quantity: {type: integer, minimum: 1}
                price: {type: number}
                options:
                  type: object
                  properties:
                    lines:
                      type: array
                      items:
                        type: object
                        properties: {sku: {type: string}, quantity: {type: integer, minimum: 1}}
      responses: {"200": {description: ok}}
`

// shopStep validates POST /orders of shopSpec under an OpenAPI version.
func shopStep(t *testing.T, version string) Step {
	t.Helper()
	return specStep(t, "openapi: "+version+shopSpec, "POST", "/orders")
}

// specStep validates the operation method path of the OpenAPI document
// text.
func specStep(t *testing.T, text, method, path string) Step {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	item := doc.Paths.Value(path)
	route := &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: item.GetOperation(method)}
	return ValidateRequest(ValidateOptions{Routes: []OpenAPIRoute{{Method: method, Route: route}}})
}

// bodyHandler records the body the next handler gets.
type bodyHandler struct {
	calls int
	body  []byte
}

func (h *bodyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	h.calls++
	h.body, _ = io.ReadAll(r.Body)
	return nil
}

// postOrder sends POST target with a JSON body (and the header lines in
// hdr) through step. It returns the refusal, if any, and what the next
// handler got.
func postOrder(t *testing.T, step Step, target string, hdr http.Header, body string) (*Error, *bodyHandler) {
	t.Helper()
	r := request("POST", target, "192.0.2.1", nil, map[string]string{"Content-Type": "application/json"})
	for k, vs := range hdr {
		r.Header[k] = vs
	}
	r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
	next := &bodyHandler{}
	err := Chain(next, step).ServeHTTP(httptest.NewRecorder(), r)
	var pe *Error
	if err != nil {
		pe = AsError(err)
	}
	if (pe == nil) == (next.calls == 0) {
		t.Fatalf("%s %q: error %v, forwarded %d times", target, body, err, next.calls)
	}
	return pe, next
}

// wantViolation fails unless pe is a request_invalid 400 listing a
// violation in in at field whose message contains text.
func wantViolation(t *testing.T, pe *Error, in, field, text string) {
	t.Helper()
	if pe == nil {
		t.Fatalf("forwarded; want 400 with a violation in %s %q (%s)", in, field, text)
	}
	if pe.Status != http.StatusBadRequest || pe.Reason != "request_invalid" || pe.Type != "request-invalid" {
		t.Fatalf("%d %s (%s); want 400 request_invalid", pe.Status, pe.Reason, pe.Type)
	}
	vs, _ := pe.Extensions["errors"].([]Violation)
	for _, v := range vs {
		if v.In == in && v.Field == field && strings.Contains(v.Message, text) {
			return
		}
	}
	t.Fatalf("violations %+v; want one in %s %q containing %q", vs, in, field, text)
}

var openAPIVersions = []string{"3.0.3", "3.1.0"}

const validOrder = `{"item":"a","quantity":1}`

// kin-openapi validates the first value of a parameter given several
// times: ?limit=10&limit=100 went through with both (and the reverse
// order was refused). A query or header parameter that takes one value is
// refused when given more; arrays given as repeated parameters still
// pass. (A repeated cookie has each value checked instead: see
// TestValidateRequest_RepeatedCookieHasEachValueChecked.)
func TestValidateRequest_RepeatedParameterIsRefused(t *testing.T) {
	for _, version := range openAPIVersions {
		t.Run(version, func(t *testing.T) {
			step := shopStep(t, version)
			for _, tc := range []struct {
				name, target string
				hdr          http.Header
				in, field    string // "" when the request passes
			}{
				{"one limit", "/orders?limit=10", nil, "", ""},
				{"limit, valid then invalid", "/orders?limit=10&limit=100", nil, "query", "limit"},
				{"limit, invalid then valid", "/orders?limit=100&limit=10", nil, "query", "limit"},
				{"limit, valid twice", "/orders?limit=10&limit=10", nil, "query", "limit"},
				{"exploded array", "/orders?tags=a&tags=b&tags=c", nil, "", ""},
				{"array not exploded", "/orders?ids=1,2", nil, "", ""},
				{"array not exploded, repeated", "/orders?ids=1&ids=x", nil, "query", "ids"},
				{"header once", "/orders", http.Header{"X-Tenant": {"acme"}}, "", ""},
				{"header twice", "/orders", http.Header{"X-Tenant": {"acme", "ACME!"}}, "header", "X-Tenant"},
				{"array header on several lines", "/orders", http.Header{"X-Labels": {"a", "b, c"}}, "", ""},
				{"cookie once", "/orders", http.Header{"Cookie": {"session=abc"}}, "", ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					pe, _ := postOrder(t, step, tc.target, tc.hdr, validOrder)
					if tc.in == "" {
						if pe != nil {
							t.Fatalf("refused: %+v", pe.Extensions["errors"])
						}
						return
					}
					wantViolation(t, pe, tc.in, tc.field, "given 2 times")
				})
			}
		})
	}
}

// paramsSpec declares the parameters of GET /items: limit takes one
// integer of at most 100, page is required, tags (exploded) takes at most
// two distinct lowercase words, sort and Sort are two parameters, session
// is a cookie that takes one value.
const paramsSpec = `
info: {title: items, version: "1"}
paths:
  /items:
    get:
      parameters:
        - {name: limit, in: query, schema: {type: integer, maximum: 100}}
        - {name: page, in: query, required: true, schema: {type: integer, minimum: 1}}
        - {name: tags, in: query, schema: {type: array, maxItems: 2, uniqueItems: true, items: {type: string, pattern: "^[a-z]+$"}}}
        - {name: sort, in: query, schema: {type: string, enum: [asc, desc]}}
        - {name: Sort, in: query, schema: {type: string, enum: [name, date]}}
        - {name: session, in: cookie, schema: {type: string, pattern: "^[a-z]+$"}}
      responses: {"200": {description: ok}}
`

// prefsParam is a cookie described by content. kin-openapi v0.153.0
// refuses a request without it ("http: named cookie not present"), so it
// is required, and only the tests of cookies declare it.
const prefsParam = `
        - {name: prefs, in: cookie, required: true, content: {application/json: {schema: {type: integer, maximum: 10}}}}`

// itemsStep validates GET /items of paramsSpec, with the parameters in
// params too, under an OpenAPI version.
func itemsStep(t *testing.T, version, params string) Step {
	t.Helper()
	spec := strings.Replace(paramsSpec, "\n      responses:", params+"\n      responses:", 1)
	return specStep(t, "openapi: "+version+spec, "GET", "/items")
}

// violation is a violation a test wants: in at field, with a message that
// holds text.
type violation struct{ in, field, text string }

// getItems sends GET target (with the Cookie lines cookies) through step
// and fails unless it is refused with each of want, or passes when want
// is empty.
func getItems(t *testing.T, step Step, target string, cookies []string, want ...violation) {
	t.Helper()
	r := request("GET", target, "192.0.2.1", nil, nil)
	if cookies != nil {
		r.Header["Cookie"] = cookies
	}
	_, pe, passed := run(step, r)
	if len(want) == 0 {
		if !passed {
			t.Fatalf("refused: %+v", pe)
		}
		return
	}
	if passed {
		t.Fatalf("passed; want %+v", want)
	}
	for _, w := range want {
		wantViolation(t, pe, w.in, w.field, w.text)
	}
}

// A browser sends a cookie name more than once when it keeps cookies of
// that name for several paths or domains (RFC 6265, section 5.4); such a
// request was refused as a parameter given twice. Each value of a
// repeated cookie is checked, and a violation says which one breaks the
// schema.
func TestValidateRequest_RepeatedCookieHasEachValueChecked(t *testing.T) {
	many := func(n int, last string) []string {
		return []string{"prefs=1; " + strings.Repeat("session=abc; ", n-1) + "session=" + last}
	}
	for _, version := range openAPIVersions {
		t.Run(version, func(t *testing.T) {
			step := itemsStep(t, version, prefsParam)
			for _, tc := range []struct {
				name    string
				cookies []string
				want    []violation
			}{
				{"once", []string{"prefs=1; session=abc"}, nil},
				{"twice, valid", []string{"prefs=1; session=abc; session=def"}, nil},
				{"twice on two lines, valid", []string{"session=abc", "prefs=1; session=def"}, nil},
				{"twice, quoted, valid", []string{`prefs=1; session="abc"; session=def`}, nil},
				{"twice, second invalid", []string{"prefs=1; session=abc; session=ABC!"}, []violation{{"cookie", "session", "the 2nd value: "}}},
				{"twice on two lines, second invalid", []string{"session=abc", "prefs=1; session=ABC!"}, []violation{{"cookie", "session", "the 2nd value: "}}},
				{"twice, first invalid", []string{"prefs=1; session=ABC!; session=abc"}, []violation{{"cookie", "session", "the 1st value: "}}},
				{"three times, third invalid", []string{"prefs=1; session=abc; session=def; session=1"}, []violation{{"cookie", "session", "the 3rd value: "}}},
				{"twice, both invalid", []string{"prefs=1; session=A; session=B"}, []violation{{"cookie", "session", "the 1st value: "}, {"cookie", "session", "the 2nd value: "}}},
				{"by content, twice, valid", []string{"prefs=1; prefs=10"}, nil},
				{"by content, twice, second invalid", []string{"prefs=1; prefs=11"}, []violation{{"cookie", "prefs", "the 2nd value: "}}},
				{"17 times, valid", many(17, "abc"), nil},
				{"17 times, last invalid", many(17, "X"), []violation{{"cookie", "session", "the 17th value: "}}},
				{"18 times", many(18, "abc"), []violation{{"cookie", "session", "not checked"}}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					getItems(t, step, "/items?page=1", tc.cookies, tc.want...)
				})
			}
		})
	}
}

// A backend that reads query names without regard to case (ASP.NET
// Core's model binding, among others) took ?Limit=100000 for limit, which
// kin-openapi did not check. A name that differs from a declared
// parameter's only in case is checked as the parameter, and counts
// as its value; a valid value passes however it is spelled.
func TestValidateRequest_QueryNameInAnotherCaseIsTheParameter(t *testing.T) {
	for _, version := range openAPIVersions {
		t.Run(version, func(t *testing.T) {
			step := itemsStep(t, version, "")
			for _, tc := range []struct {
				name, target string
				want         []violation
			}{
				{"declared spelling", "/items?page=1&limit=10", nil},
				{"another case, valid", "/items?page=1&Limit=10", nil},
				{"another case, invalid", "/items?page=1&Limit=100000", []violation{{"query", "Limit", ""}}},
				{"another case, not a number", "/items?page=1&LIMIT=x", []violation{{"query", "LIMIT", ""}}},
				{"both spellings, second invalid", "/items?page=1&limit=10&Limit=100000", []violation{{"query", "limit", "given 2 times (as limit, Limit)"}, {"query", "Limit", ""}}},
				{"both spellings, valid", "/items?page=1&limit=10&Limit=20", []violation{{"query", "limit", "given 2 times"}}},
				{"two other spellings", "/items?page=1&LIMIT=10&Limit=20", []violation{{"query", "limit", "given 2 times (as LIMIT, Limit)"}}},
				{"another case twice, second invalid", "/items?page=1&Limit=10&Limit=200", []violation{{"query", "limit", "given 2 times"}, {"query", "Limit", "the 2nd value: "}}},
				{"escaped", "/items?page=1&%4Cimit=100000", []violation{{"query", "Limit", ""}}},
				{"required, another case only", "/items?Page=1", []violation{{"query", "page", "required"}}},
				{"required, another case invalid", "/items?page=1&PAGE=0", []violation{{"query", "page", "given 2 times"}, {"query", "PAGE", ""}}},
				{"array, another case, valid", "/items?page=1&Tags=abc", nil},
				{"array, another case, invalid item", "/items?page=1&Tags=abc&Tags=ABC", []violation{{"query", "Tags/1", ""}}},
				{"array, both spellings, valid", "/items?page=1&tags=abc&Tags=def", nil},
				{"array, both spellings, too many together", "/items?page=1&tags=abc&Tags=def&TAGS=ghi", []violation{{"query", "tags", "the values of tags, TAGS, Tags together: "}}},
				{"array, both spellings, repeated together", "/items?page=1&tags=abc&Tags=abc", []violation{{"query", "tags", "together"}}},
				{"two declared names that differ in case", "/items?page=1&sort=asc&Sort=name", nil},
				{"a long s for an s (Java folds it)", "/items?page=1&tag%C5%BF=ABC", []violation{{"query", "tag\u017f/0", ""}}},
				{"a name that folds to both", "/items?page=1&SORT=asc", []violation{{"query", "SORT", ""}}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					getItems(t, step, tc.target, nil, tc.want...)
				})
			}
		})
	}
}

// Go's query parser drops a whole pair that holds a ";" or an invalid
// percent-encoding, and kin-openapi does not see the error:
// ?page=1&limit=10;limit=100000 was validated without limit, while a
// backend that splits at ";" reads it, and ?limit=%zz as if limit were
// absent, while PHP or Node's querystring hand the backend "%zz". Such a
// pair in the query of a validated operation is refused; %3B and valid
// escapes pass.
func TestValidateRequest_DroppedQueryPairsAreRefused(t *testing.T) {
	const semi, pct = "percent-encoded as %3B", "must be sent percent-encoded as %25"
	for _, version := range openAPIVersions {
		t.Run(version, func(t *testing.T) {
			step := itemsStep(t, version, "")
			for _, tc := range []struct {
				name, target string
				want         []violation
			}{
				{"; separating one parameter", "/items?page=1&limit=10;limit=100000", []violation{{"query", "limit", semi}}},
				{"; after another", "/items?page=1&a=1;limit=100000", []violation{{"query", "a", semi}}},
				{"; in a name", "/items?page=1&a;b=1", []violation{{"query", "a;b", semi}}},
				{"; hiding a required parameter's value", "/items?page=0;page=1", []violation{{"query", "page", semi}}},
				{"; in two pairs", "/items?a=1;b=2&page=1&c;=3", []violation{{"query", "a", semi}, {"query", "c;", semi}}},
				{"; percent-encoded", "/items?page=1&q=a%3Bb", nil},
				{"% in a value", "/items?page=1&limit=%zz", []violation{{"query", "limit", pct}}},
				{"% at a value's end", "/items?page=1&limit=1%2", []violation{{"query", "limit", pct}}},
				{"% in a name", "/items?page=1&li%zzmit=5", []violation{{"query", "li%zzmit", pct}}},
				{"% hiding a required parameter", "/items?page=%", []violation{{"query", "page", pct}}},
				{"valid escapes", "/items?page=1&q=%41%2fb%25", nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					getItems(t, step, tc.target, nil, tc.want...)
				})
			}
		})
	}
}

func TestOrdinal(t *testing.T) {
	for n, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 10: "10th", 11: "11th", 12: "12th", 13: "13th",
		21: "21st", 22: "22nd", 23: "23rd", 101: "101st", 111: "111th", 112: "112th", 113: "113th"} {
		if got := ordinal(n); got != want {
			t.Errorf("ordinal(%d) = %q, want %q", n, got, want)
		}
	}
}

// kin-openapi's JSON decoder reads the first value of a body and keeps the
// last of duplicated member names: a body with data after its value, or
// with a name given twice, went through unchanged, and the backend could
// see what validation did not (the second value, the first quantity).
// 1e400 failed with "cannot convert json.Number to float64" (3.0) or went
// through as an infinity (3.1).
func TestValidateRequest_JSONBodyIsOneValueWithUniqueNames(t *testing.T) {
	bigLines := strings.TrimSuffix(strings.Repeat(`{"sku":"abcdefgh","quantity":1},`, 1000), ",") // 32 KB: over listBodyLimit
	manyNames := func(extra string) string {
		var b strings.Builder
		b.WriteString(`{"item":"a","quantity":1,"options":{`)
		for i := range 100 {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(`"lines":[]` + extra + `}}`)
		return b.String()
	}
	for _, version := range openAPIVersions {
		t.Run(version, func(t *testing.T) {
			step := shopStep(t, version)
			for _, tc := range []struct {
				name, body  string
				field, text string // "" when the body passes
			}{
				{"valid", validOrder, "", ""},
				{"valid, space after", validOrder + " \r\n\t", "", ""},
				{"valid, nested objects and arrays", `{"item":"a","quantity":2,"price":-1.5e3,"options":{"lines":[{"sku":"x","quantity":1},{"sku":"y","quantity":3,"note":{"k":[[],{},null,true,false,"\u00e9\ud83d\ude00"]}}],"quantity":0}}`, "", ""},
				{"valid, many names", manyNames(""), "", ""},
				{"valid, large", `{"item":"a","quantity":1,"options":{"lines":[` + bigLines + `]}}`, "", ""},
				{"text after", validOrder + "xyz", "", "after the JSON value at byte 25"},
				{"second value", validOrder + `{"item":"b","quantity":-5,"evil":true}`, "", "must be one JSON value"},
				{"second value after space", validOrder + "\n" + validOrder, "", "after the JSON value"},
				{"text after a large body", `{"item":"a","quantity":1,"options":{"lines":[` + bigLines + `]}}]`, "", "after the JSON value"},
				{"duplicate name", `{"item":"a","quantity":0,"quantity":2}`, "/quantity", `property "quantity" is given more than once`},
				{"duplicate name, valid values", `{"item":"a","quantity":1,"quantity":1}`, "/quantity", `property "quantity" is given more than once`},
				{"duplicate name, escaped", `{"item":"a","quantity":0,"\u0071uantity":2}`, "/quantity", `property "quantity" is given more than once`},
				{"duplicate name, nested", `{"item":"a","quantity":1,"options":{"lines":[{"sku":"x"},{"sku":"x","sku":"y"}]}}`, "/options/lines/1/sku", `property "sku" is given more than once`},
				{"duplicate name, nested deeper", `{"item":"a","quantity":1,"options":{"a/b":[[{"c":1,"c":2}]]}}`, "/options/a~1b/0/0/c", `property "c" is given more than once`},
				{"duplicate name in a large object", manyNames(`,"k77":-1`), "/options/k77", `property "k77" is given more than once`},
				{"duplicate name in a large body", `{"item":"a","quantity":1,"options":{"lines":[` + bigLines + `,{"sku":"x","quantity":-1,"quantity":1}]}}`, "/options/lines/1000/quantity", "given more than once"},
				{"number out of range", `{"item":"a","quantity":1e400}`, "/quantity", "1e400 is out of the range of a number"},
				{"negative number out of range", `{"item":"a","quantity":-1e400}`, "/quantity", "-1e400 is out of the range of a number"},
				{"number out of range, type number", `{"item":"a","quantity":1,"price":2E+308}`, "/price", "2E+308 is out of the range of a number"},
				{"number out of range in a large body", `{"item":"a","quantity":1e400,"options":{"lines":[` + bigLines + `]}}`, "/quantity", "1e400 is out of the range of a number"},
				{"number out of range, not in the schema", `{"item":"a","quantity":1,"options":{"x":[1e999]}}`, "/options/x/0", "1e999 is out of the range of a number"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					pe, next := postOrder(t, step, "/orders", nil, tc.body)
					if tc.text == "" {
						if pe != nil {
							t.Fatalf("refused: %+v", pe.Extensions["errors"])
						}
						if string(next.body) != tc.body {
							t.Fatalf("forwarded %d bytes, not the body (%d bytes)", len(next.body), len(tc.body))
						}
						return
					}
					wantViolation(t, pe, "body", tc.field, tc.text)
				})
			}
		})
	}
}

// A body that breaks the schema and has a duplicate name lists both; a
// number out of range is listed once (3.0's own error says the same).
func TestValidateRequest_JSONBodyProblemsAreListedWithSchemaViolations(t *testing.T) {
	for _, version := range openAPIVersions {
		t.Run(version, func(t *testing.T) {
			step := shopStep(t, version)
			pe, _ := postOrder(t, step, "/orders?limit=100", nil, `{"item":1,"quantity":1,"quantity":2}`)
			wantViolation(t, pe, "query", "limit", "")
			wantViolation(t, pe, "body", "/item", "")
			wantViolation(t, pe, "body", "/quantity", "given more than once")
			pe, _ = postOrder(t, step, "/orders", nil, `{"item":"a","quantity":1e400}`)
			if vs := pe.Extensions["errors"].([]Violation); len(vs) != 1 {
				t.Fatalf("violations %+v, want one", vs)
			}
			// Not JSON: validation's own error, nothing more.
			pe, _ = postOrder(t, step, "/orders", nil, `{"item":"a","item":`)
			if vs := pe.Extensions["errors"].([]Violation); len(vs) != 1 || strings.Contains(vs[0].Message, "more than once") {
				t.Fatalf("violations %+v, want validation's one", vs)
			}
		})
	}
}

// BenchmarkValidateRequest_ValidBody validates a valid body with nested
// objects and arrays.
func BenchmarkValidateRequest_ValidBody(b *testing.B) {
	for _, version := range openAPIVersions {
		b.Run(version, func(b *testing.B) {
			t := &testing.T{}
			step := shopStep(t, version)
			body := `{"item":"a","quantity":2,"price":-1.5e3,"options":{"lines":[{"sku":"x","quantity":1},{"sku":"y","quantity":3}]}}`
			h := Chain(HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil }), step)
			b.ReportAllocs()
			for b.Loop() {
				r := request("POST", "/orders?limit=10", "192.0.2.1", nil, map[string]string{"Content-Type": "application/json"})
				r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
				if err := h.ServeHTTP(nil, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
