package policy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTransform_Decisions(t *testing.T) {
	cases := []struct {
		name        string
		o           TransformOptions
		path        string
		params      Params
		inHeader    map[string]string
		wantPath    string // "" means unchanged
		wantRaw     string
		wantHeaders map[string]string
	}{
		{"strip prefix", TransformOptions{StripPrefix: "/api"}, "/api/orders/1", Params{}, nil, "/orders/1", "/orders/1", nil},
		{"strip the whole path", TransformOptions{StripPrefix: "/api"}, "/api", Params{}, nil, "/", "/", nil},
		{"prefix at a segment boundary only", TransformOptions{StripPrefix: "/api"}, "/apiary/x", Params{}, nil, "", "", nil},
		{"rewrite with parameters", TransformOptions{Rewrite: []PathPart{{Literal: "v2"}, {Literal: "orders"}, {IsParam: true, Param: 0}}},
			"/orders/a b", Params{Names: []string{"id"}, Values: []string{"a b"}}, nil, "/v2/orders/a b", "/v2/orders/a%20b", nil},
		{"rewrite with a catch-all", TransformOptions{Rewrite: []PathPart{{Literal: "files"}, {IsParam: true, Param: 0, CatchAll: true}}},
			"/f/x/y", Params{Names: []string{"rest"}, Values: []string{"x/y"}}, nil, "/files/x/y", "/files/x/y", nil},
		{"header operations in order", TransformOptions{RequestHeaders: []HeaderOp{
			{Kind: HeaderRemove, Name: "X-Debug"}, {Kind: HeaderSet, Name: "X-Env", Value: "prod"}, {Kind: HeaderAppend, Name: "X-Env", Value: "eu"}}},
			"/", Params{}, map[string]string{"X-Debug": "1", "X-Env": "dev"}, "", "", map[string]string{"X-Debug": "", "X-Env": "prod"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := request("GET", "http://gw/", "192.0.2.1", nil, tc.inHeader)
			x := ExchangeFrom(r.Context())
			x.Path, x.Params = tc.path, tc.params
			var seen *http.Request
			h := Chain(HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { seen = r; return nil }), Transform(tc.o))
			if err := h.ServeHTTP(httptest.NewRecorder(), r); err != nil {
				t.Fatal(err)
			}
			up, ok := UpstreamPathFrom(seen.Context())
			if tc.wantPath == "" {
				if ok {
					t.Fatalf("path changed to %+v", up)
				}
			} else if up.Path != tc.wantPath || up.RawPath != tc.wantRaw {
				t.Fatalf("upstream path %+v, want %q %q", up, tc.wantPath, tc.wantRaw)
			}
			for k, v := range tc.wantHeaders {
				if got := seen.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestTransform_ResponseHeaders(t *testing.T) {
	step := Transform(TransformOptions{ResponseHeaders: []HeaderOp{{Kind: HeaderRemove, Name: "Server"}, {Kind: HeaderSet, Name: "X-Frame-Options", Value: "DENY"}}})
	h := Chain(HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Server", "leaky/1.0")
		_, _ = w.Write([]byte("hi"))
		return nil
	}), step)
	w := httptest.NewRecorder()
	_ = h.ServeHTTP(w, request("GET", "/", "192.0.2.1", nil, nil))
	if w.Header().Get("Server") != "" || w.Header().Get("X-Frame-Options") != "DENY" {
		t.Fatalf("headers %v", w.Header())
	}
}
