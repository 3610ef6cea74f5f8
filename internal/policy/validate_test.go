package policy

import (
	"bytes"
	"context"
	"io"
	"net/http"
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
