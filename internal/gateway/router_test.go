package gateway

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// testRouter builds a router from (api, hosts, prefix, ops) without a
// full compile.
func testRouter(t testing.TB, apis ...testAPI) *Router {
	t.Helper()
	rt := newRouter()
	for _, a := range apis {
		api := &API{Name: a.name}
		var ops []*Operation
		var all *Operation
		if len(a.ops) == 0 {
			all = &Operation{API: api, Name: "*"}
		}
		for _, o := range a.ops {
			segs, err := config.ParseTemplate(o[1])
			if err != nil {
				t.Fatal(err)
			}
			op := &Operation{API: api, Name: o[0] + " " + o[1], Methods: []string{o[0]}, segments: segs}
			for _, s := range segs {
				if s.Kind != config.Literal {
					op.paramNames = append(op.paramNames, s.Value)
				}
			}
			ops = append(ops, op)
		}
		rt.add(api, a.hosts, a.prefix, ops, all)
	}
	rt.finish()
	return rt
}

type testAPI struct {
	name   string
	hosts  []string
	prefix string
	ops    [][2]string
}

func TestRouterMatch(t *testing.T) {
	rt := testRouter(t,
		testAPI{name: "orders", prefix: "/orders", ops: [][2]string{
			{"GET", "/"}, {"POST", "/"}, {"GET", "/{id}"}, {"DELETE", "/{id}"},
			{"GET", "/{id}/items/{item}"}, {"POST", "/new"}, {"GET", "/files/{path...}"},
		}},
		testAPI{name: "orders-v2", hosts: []string{"v2.example.com"}, prefix: "/orders", ops: [][2]string{{"GET", "/{id}"}}},
		testAPI{name: "wild", hosts: []string{"*.example.com"}, prefix: "/", ops: [][2]string{{"GET", "/hello"}}},
		testAPI{name: "catchall", prefix: "/legacy"},
		testAPI{name: "root", prefix: "/", ops: [][2]string{{"GET", "/"}, {"GET", "/health"}}},
	)
	tests := []struct {
		host, method, path string
		op                 string // "" = 404; "405:Allow" = 405
		params             []string
	}{
		{"a", "GET", "/orders", "GET /", nil},
		{"a", "GET", "/orders/", "GET /", nil},
		{"a", "POST", "/orders", "POST /", nil},
		{"a", "GET", "/orders/42", "GET /{id}", []string{"42"}},
		{"a", "HEAD", "/orders/42", "GET /{id}", []string{"42"}},
		{"a", "POST", "/orders/new", "POST /new", nil},
		{"a", "GET", "/orders/new", "GET /{id}", []string{"new"}},
		{"a", "PUT", "/orders/new", "405:DELETE, GET, HEAD, POST", nil},
		{"a", "GET", "/orders/42/items/7", "GET /{id}/items/{item}", []string{"42", "7"}},
		{"a", "GET", "/orders/files/a/b/c", "GET /files/{path...}", []string{"a/b/c"}},
		{"a", "GET", "/orders/files", "GET /files/{path...}", []string{""}},
		{"a", "GET", "/orders/42/nope", "", nil},
		{"a", "GET", "/ordersX", "", nil},
		{"a", "PATCH", "/orders/42", "405:DELETE, GET, HEAD", nil},
		{"V2.Example.COM:8443", "GET", "/orders/1", "GET /{id}", []string{"1"}},
		{"v2.example.com", "GET", "/hello", "GET /hello", nil},
		// An operation miss under the exact host's API goes on to the
		// wildcard's (another miss) and then to the API for every host;
		// a 405 there ends the search.
		{"v2.example.com", "GET", "/orders", "GET /", nil},
		{"v2.example.com", "DELETE", "/orders/1", "405:GET, HEAD", nil},
		{"x.example.com", "GET", "/hello", "GET /hello", nil},
		{"example.com", "GET", "/hello", "", nil},
		{"a", "DELETE", "/legacy/anything/at/all", "*", nil},
		{"a", "GET", "/legacy", "*", nil},
		{"a", "GET", "/", "GET /", nil},
		{"a", "GET", "/health", "GET /health", nil},
		{"a", "GET", "/other", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.host+tt.path, func(t *testing.T) {
			var m Match
			ok := rt.Match(tt.host, tt.method, tt.path, &m)
			switch {
			case tt.op == "":
				if ok {
					t.Fatalf("matched %v (allow %q), want 404", m.Op, m.Allow)
				}
				return
			case len(tt.op) > 4 && tt.op[:4] == "405:":
				if !ok || m.Op != nil || m.Allow != tt.op[4:] {
					t.Fatalf("got ok=%v op=%v allow=%q, want 405 with %q", ok, m.Op, m.Allow, tt.op[4:])
				}
				return
			}
			if !ok || m.Op == nil {
				t.Fatalf("no match (allow %q), want %s", m.Allow, tt.op)
			}
			if m.Op.Name != tt.op {
				t.Fatalf("matched %q, want %q", m.Op.Name, tt.op)
			}
			got := m.Params[:m.NParam]
			if len(got) != len(tt.params) {
				t.Fatalf("params %q, want %q", got, tt.params)
			}
			for i := range got {
				if got[i] != tt.params[i] {
					t.Fatalf("params %q, want %q", got, tt.params)
				}
			}
		})
	}
}

func TestRouterMatch_DoesNotAllocate(t *testing.T) {
	rt := testRouter(t, testAPI{name: "orders", prefix: "/orders", ops: [][2]string{{"GET", "/{id}/items/{item}"}}})
	var m Match
	allocs := testing.AllocsPerRun(1000, func() {
		rt.Match("api.example.com:443", "GET", "/orders/42/items/7", &m)
	})
	if allocs != 0 {
		t.Fatalf("allocs = %v, want 0", allocs)
	}
}

func BenchmarkRouterMatch(b *testing.B) {
	rt := testRouter(b,
		testAPI{name: "orders", prefix: "/orders", ops: [][2]string{{"GET", "/"}, {"GET", "/{id}"}, {"GET", "/{id}/items/{item}"}, {"POST", "/"}}},
		testAPI{name: "users", prefix: "/users", ops: [][2]string{{"GET", "/{id}"}, {"PUT", "/{id}"}}},
		testAPI{name: "root", prefix: "/", ops: [][2]string{{"GET", "/health"}}},
	)
	var m Match
	b.ReportAllocs()
	for b.Loop() {
		if !rt.Match("api.example.com", "GET", "/orders/42/items/7", &m) {
			b.Fatal("no match")
		}
	}
}

func FuzzRouterMatch(f *testing.F) {
	rt := testRouter(f,
		testAPI{name: "orders", prefix: "/orders", ops: [][2]string{{"GET", "/{id}"}, {"GET", "/files/{p...}"}}},
		testAPI{name: "root", prefix: "/", ops: [][2]string{{"GET", "/"}}},
	)
	for _, s := range []string{"/orders/1", "/orders/files/a/b", "/", "//", "/orders//"} {
		f.Add("host", "GET", s)
	}
	f.Fuzz(func(t *testing.T, host, method, path string) {
		var m Match
		if rt.Match(host, method, path, &m) && m.Op == nil && m.Allow == "" {
			t.Fatalf("matched with neither an operation nor an Allow")
		}
		if m.NParam > MaxParams {
			t.Fatalf("NParam %d", m.NParam)
		}
	})
}

// canonicalHost gives what its definition says (the port cut after the
// last ']', a trailing dot dropped, lower case) for random hosts of
// letters in both cases, digits, dots, colons and brackets, and
// allocates only for upper-case letters (the definition lowers always).
func TestCanonicalHost_SameAsDefinition(t *testing.T) {
	def := func(host string) string {
		if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
			host = host[:i]
		}
		return strings.ToLower(strings.TrimSuffix(host, "."))
	}
	rng := rand.New(rand.NewPCG(5, 6))
	alphabet := "aZ9.:[]-xX"
	for range 50000 {
		h := make([]byte, rng.IntN(16))
		for i := range h {
			h[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if got, want := canonicalHost(string(h)), def(string(h)); got != want {
			t.Fatalf("%q: %q, want %q", h, got, want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"API.Example.COM:8443", "api.example.com"}, {"[::1]:80", "[::1]"}, {"[::1]", "[::1]"}, {"example.com.", "example.com"}, {"h:PORT", "h"},
	} {
		if got := canonicalHost(c.in); got != c.want {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
	host := "api.example.com:8443"
	if n := testing.AllocsPerRun(100, func() { canonicalHost(host) }); n != 0 {
		t.Errorf("a lower-case host: %v allocations, want 0", n)
	}
}
