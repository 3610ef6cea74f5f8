package gateway

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/h1"
)

// The direct path (the client's header shared, the proxy as the h1
// transport's field filter, Omit fields from directFields) forwards the
// same client fields as the copy outHeader makes, and notes the same of
// them for setHeaders (the forwarding ones for a trusted peer): checked
// on random headers whose names are drawn from the hop-by-hop,
// spoofable, forwarding, identity and credential fields, fields a
// Connection names (in any case) and plain ones.
func TestDirectFields_SameAsOutHeader(t *testing.T) {
	p := &proxyHandler{settings: &settings{identityFold: foldHeaderName("X-Gatehouse-"), apiKeyHeader: "X-Api-Key", apiKeyBit: h1.NameBit("X-Api-Key")}}
	names := []string{
		"Accept", "User-Agent", "Cookie", "X-Custom", "X-Hop", "X-Other-Hop", "Authorization", "X-Api-Key",
		"Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te", "Trailer", "Upgrade", "Transfer-Encoding",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded", "X-Real-Ip",
		"X-Gatehouse-Subject", "X-Gatehouse-Groups", "Traceparent", "X-Request-Id", "Close",
	}
	connTokens := []string{"keep-alive", "close", "x-hop", "X-HOP", "X-Other-Hop", "upgrade", "Cookie", "x-forwarded-for", "te", "X-Absent", ""}
	teValues := []string{"trailers", "gzip", "gzip, Trailers", ""}
	rng := rand.New(rand.NewPCG(1, 2))
	var known, small, large int // headers that directFields reads by their names' bits, in a pass, by lookups
	for i := range 3000 {
		in := http.Header{}
		share := []float64{0.1, 0.3, 0.7}[i%3] // of the names, present
		for _, k := range names {
			if rng.Float64() < share {
				in[k] = []string{"v1"}
				if rng.IntN(4) == 0 {
					in[k] = append(in[k], "v2")
				}
			}
		}
		if _, ok := in["Te"]; ok {
			in["Te"] = []string{teValues[rng.IntN(len(teValues))]}
		}
		if rng.IntN(2) == 0 {
			var conn []string
			for range 1 + rng.IntN(2) {
				v := connTokens[rng.IntN(len(connTokens))]
				if rng.IntN(2) == 0 {
					v += ", " + connTokens[rng.IntN(len(connTokens))]
				}
				conn = append(conn, v)
			}
			in["Connection"] = conn
		}

		var copied clientFields
		want := p.outHeader(in, 0, &copied)

		var fs h1.Fields
		var direct clientFields
		trusted := i%2 == 0
		names := ^uint64(0) // not known (another server than h1's)
		switch {
		case i%4 < 2:
			names = 0 // as h1 tells them
			for k := range in {
				names |= h1.NameBit(k)
			}
			known++
		case len(in) <= smallHeader:
			small++
		default:
			large++
		}
		p.directFields(&fs, in, &direct, trusted, names)
		// What the h1 transport writes: the header's fields that no
		// Field names and the filter lets through, then the Fields.
		got := http.Header{}
		for k, vs := range in {
			if !named(fs, k) && p.SendField(k) {
				got[k] = vs
			}
		}
		for _, f := range fs {
			if !f.Omit {
				got[f.Name] = append(got[f.Name], f.Value)
			}
		}
		if !reflect.DeepEqual(keysOf(got), keysOf(want)) {
			t.Fatalf("header %v: direct sends %v, outHeader %v", in, keysOf(got), keysOf(want))
		}
		for k := range want {
			if !reflect.DeepEqual(got[k], want[k]) {
				t.Fatalf("header %v: %s: direct %q, outHeader %q", in, k, got[k], want[k])
			}
		}
		if !trusted {
			// The forwarding fields, which setHeaders reads from a
			// trusted peer alone, need not be noted.
			direct.xff, direct.xfProto, direct.xfHost = nil, "", ""
			copied.xff, copied.xfProto, copied.xfHost = nil, "", ""
		}
		if !reflect.DeepEqual(direct, copied) {
			t.Fatalf("case %d, header %v: directFields noted %+v, outHeader %+v", i, in, direct, copied)
		}
	}
	if known < 500 || small < 300 || large < 300 {
		t.Errorf("%d headers with known names, %d small and %d large ones: each way needs cases", known, small, large)
	}
}

// named reports whether fs has a field named k.
func named(fs h1.Fields, k string) bool {
	for _, f := range fs {
		if f.Name == k {
			return true
		}
	}
	return false
}

func keysOf(h http.Header) []string {
	ks := make([]string, 0, len(h))
	for k := range h {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// request.names stays true for Connection, Upgrade and Te all request
// long (the upgrade check and directFields skip their lookups on it)
// only because no transform may change them: the configuration must go
// on refusing that, in any spelling.
func TestNoTransformChangesConnectionUpgradeOrTe(t *testing.T) {
	for _, name := range []string{"Connection", "connection", "Upgrade", "TE", "te"} {
		for _, op := range []string{"set: {" + name + ": x}", "append: {" + name + ": x}", "remove: [" + name + "]"} {
			cfg := "backends:\n  - name: be\n    instances: [{url: \"http://127.0.0.1:1\"}]\n" +
				"apis:\n  - name: a\n    path_prefix: /a\n    backend: be\n    auth: {anonymous: true}\n" +
				"    transforms:\n      request_headers: {" + op + "}\n"
			_, diags := config.Parse("t.yaml", []byte(cfg))
			if !strings.Contains(fmt.Sprint(diags), "cannot be changed by a transform") {
				t.Errorf("%s: a transform of %s is accepted (diagnostics: %v)", op, name, diags)
			}
		}
	}
}
