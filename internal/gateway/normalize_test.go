package gateway

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		in           string
		opts         PathOptions
		decoded, esc string
		reject       string // substring of the problem detail; empty = accepted
	}{
		{in: "/", decoded: "/", esc: "/"},
		{in: "/orders/42", decoded: "/orders/42", esc: "/orders/42"},
		{in: "/orders/42/", decoded: "/orders/42/", esc: "/orders/42/"},
		{in: "/a//b", decoded: "/a/b", esc: "/a/b"},
		{in: "/a//b", opts: PathOptions{KeepSlashes: true}, decoded: "/a//b", esc: "/a//b"},
		{in: "//a", decoded: "/a", esc: "/a"},
		{in: "/a/./b", decoded: "/a/b", esc: "/a/b"},
		{in: "/a/b/..", decoded: "/a/", esc: "/a/"},
		{in: "/a/b/.", decoded: "/a/b/", esc: "/a/b/"},
		{in: "/a/../b", decoded: "/b", esc: "/b"},
		{in: "/a/%2e%2e/b", decoded: "/b", esc: "/b"},
		{in: "/a/%2E./b", decoded: "/b", esc: "/b"},
		{in: "/a/.%2e/b", decoded: "/b", esc: "/b"},
		{in: "/%2e", decoded: "/", esc: "/"},
		{in: "/a/%41", decoded: "/a/A", esc: "/a/A"},
		{in: "/a%20b", decoded: "/a b", esc: "/a%20b"},
		{in: "/caf%C3%A9", decoded: "/café", esc: "/caf%C3%A9"},
		{in: "/a%252e%252e/b", reject: "twice"},
		{in: "/%252e%252e/admin", reject: "twice"},
		{in: "/a%252fb", reject: "twice"},
		{in: "/a%2525/b", reject: "twice"},
		{in: "/100%25", decoded: "/100%", esc: "/100%25"},
		{in: "/100%25off", decoded: "/100%off", esc: "/100%25off"},
		{in: "/a:b@c", decoded: "/a:b@c", esc: "/a:b@c"},
		{in: "/..", reject: "above the root"},
		{in: "/a/../..", reject: "above the root"},
		{in: "/%2e%2e/etc", reject: "above the root"},
		{in: "/a%2fb", reject: "encoded slash"},
		{in: "/a%2Fb", reject: "encoded slash"},
		{in: "/a%5cb", reject: "backslash"},
		{in: "/a\\b", reject: "backslash"},
		{in: "/a%00b", reject: "control character"},
		{in: "/a\x00b", reject: "control character"},
		{in: "/a%0d%0ab", reject: "control character"},
		{in: "/a;b", reject: "';'"},
		{in: "/a%3bb", reject: "';'"},
		{in: "/a;b", opts: PathOptions{AllowSemicolon: true}, decoded: "/a;b", esc: "/a;b"},
		{in: "/a%zz", reject: "percent-encoding"},
		{in: "/a%2", reject: "percent-encoding"},
		{in: "/%c0%ae%c0%ae/x", reject: "UTF-8"},
		{in: "/%ff", reject: "UTF-8"},
		{in: "/a%23b", reject: "'#'"},
		{in: "/admin%3f/x", reject: "'?'"},
		{in: "/admin%3F", reject: "'?'"},
		{in: "relative", reject: "start with '/'"},
		{in: "", reject: "start with '/'"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			dec, esc, err := normalizePath(tt.in, tt.opts)
			if tt.reject != "" {
				if err == nil {
					t.Fatalf("accepted as %q, want rejected (%s)", dec, tt.reject)
				}
				if err.Status != 400 || !strings.Contains(err.Detail, tt.reject) {
					t.Fatalf("got %d %q, want 400 mentioning %q", err.Status, err.Detail, tt.reject)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected: %s", err.Detail)
			}
			if dec != tt.decoded || esc != tt.esc {
				t.Fatalf("got (%q, %q), want (%q, %q)", dec, esc, tt.decoded, tt.esc)
			}
			// Normalization is idempotent: the forwarded form normalizes to itself.
			dec2, esc2, err2 := normalizePath(esc, tt.opts)
			if err2 != nil || dec2 != dec || esc2 != esc {
				t.Fatalf("not idempotent: %q → (%q, %q, %v)", esc, dec2, esc2, err2)
			}
		})
	}
}

func TestNormalizePath_CanonicalDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_, _, _ = normalizePath("/orders/42/items", PathOptions{})
	})
	if allocs != 0 {
		t.Fatalf("allocs = %v, want 0", allocs)
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e%2e/", "/a%2fb", "//x//y/", "/caf%C3%A9", "/a;b", "/%c0%ae"} {
		f.Add(s, false, false)
	}
	f.Fuzz(func(t *testing.T, in string, semi, keep bool) {
		o := PathOptions{AllowSemicolon: semi, KeepSlashes: keep}
		dec, esc, err := normalizePath(in, o)
		if err != nil {
			return
		}
		if !strings.HasPrefix(dec, "/") || !strings.HasPrefix(esc, "/") {
			t.Fatalf("%q → (%q, %q): not absolute", in, dec, esc)
		}
		for _, seg := range strings.Split(dec, "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("%q → %q keeps a dot segment", in, dec)
			}
		}
		if strings.ContainsAny(dec, "\\\x00") {
			t.Fatalf("%q → %q keeps a forbidden byte", in, dec)
		}
		// What is forwarded decodes to exactly what was authorized.
		dec2, esc2, err2 := normalizePath(esc, o)
		if err2 != nil || dec2 != dec || esc2 != esc {
			t.Fatalf("%q: forwarded %q normalizes to (%q, %q, %v), authorized %q", in, esc, dec2, esc2, err2, dec)
		}
	})
}

// isCanonicalPath's one table look per plain byte decides as the
// byte-by-byte definition does: every byte value at every position of
// short paths, under every option, and random paths.
func TestIsCanonicalPath_SameAsDefinition(t *testing.T) {
	def := func(raw string, o PathOptions) bool {
		for i := 0; i < len(raw); i++ {
			c := raw[i]
			switch {
			case c == '/':
				if i+1 < len(raw) {
					if n := raw[i+1]; (n == '/' && !o.KeepSlashes) || n == '.' {
						return false
					}
				}
			case c == '%', c == '\\', c == '#':
				return false
			case c == ';':
				if !o.AllowSemicolon {
					return false
				}
			case c < 0x21, c >= 0x7f:
				return false
			case !pathSafe[c]:
				return false
			}
		}
		return true
	}
	opts := []PathOptions{{}, {AllowSemicolon: true}, {KeepSlashes: true}, {AllowSemicolon: true, KeepSlashes: true}}
	for _, o := range opts {
		for _, base := range []string{"/a/b", "/ab/", "//x."} {
			for pos := 0; pos < len(base); pos++ {
				for c := 0; c < 256; c++ {
					p := []byte(base)
					p[pos] = byte(c)
					if got, want := isCanonicalPath(string(p), o), def(string(p), o); got != want {
						t.Fatalf("%q %+v: %v, want %v", p, o, got, want)
					}
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := "/./;%#\\az09-_~:@!$&'()*+,=?\x00\x7f\xc3\xa9 "
	for range 50000 {
		p := make([]byte, rng.IntN(20))
		for i := range p {
			p[i] = alphabet[rng.IntN(len(alphabet))]
		}
		o := opts[rng.IntN(len(opts))]
		if got, want := isCanonicalPath(string(p), o), def(string(p), o); got != want {
			t.Fatalf("%q %+v: %v, want %v", p, o, got, want)
		}
	}
}
