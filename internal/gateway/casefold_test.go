package gateway

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

func TestLowerASCII(t *testing.T) {
	for in, want := range map[string]string{
		"/admin": "/admin", "/ADMIN/X": "/admin/x", "/Café": "/café", "/ÉCOLE": "/École", "": "",
	} {
		if got := lowerASCII(in); got != want {
			t.Errorf("lowerASCII(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"/ADMIN/caf%C3%A9": "/admin/caf%C3%A9", "/a%2F%2FB": "/a%2F%2Fb", "/x": "/x",
	} {
		if got := lowerEscaped(in); got != want {
			t.Errorf("lowerEscaped(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { lowerASCII("/orders/42") }); n != 0 {
		t.Errorf("lowerASCII of a lower-case path allocates %v times", n)
	}
}

// Threat: a backend that ignores case serves /ADMIN as /admin. With
// case_insensitive_paths the API's prefix and operations match in any
// case, so /ADMIN is authorized by the admin API's rules, not by the
// anonymous "/" API; without it, paths are case-sensitive (RFC 3986).
func TestRouterMatch_CaseInsensitivePaths(t *testing.T) {
	build := func(fold bool) *Router {
		rt := newRouter()
		admin := &API{Name: "admin", CaseInsensitivePaths: fold}
		op := &Operation{API: admin, Name: "get-user", Methods: []string{"GET"}}
		op.segments, _ = parseTpl("/users/{id}")
		op.paramNames = []string{"id"}
		rt.add(admin, nil, "/admin", []*Operation{op}, nil)
		pub := &API{Name: "public"}
		rt.add(pub, nil, "/", nil, &Operation{API: pub, Name: "*"})
		rt.finish()
		return rt
	}
	for _, tc := range []struct {
		fold       bool
		path, want string
		param      string
	}{
		{false, "/admin/users/7", "get-user", "7"},
		{false, "/ADMIN/users/7", "*", ""},
		{false, "/Admin/Users/7", "*", ""},
		{true, "/admin/users/7", "get-user", "7"},
		{true, "/ADMIN/USERS/Ab", "get-user", "ab"},
		{true, "/aDmIn/users/7", "get-user", "7"},
		{true, "/administrator", "*", ""},
	} {
		var m Match
		if !build(tc.fold).Match("h", "GET", tc.path, &m) || m.Op == nil {
			t.Errorf("fold=%v %s: no match", tc.fold, tc.path)
			continue
		}
		if m.Op.Name != tc.want || (tc.param != "" && m.Params[0] != tc.param) {
			t.Errorf("fold=%v %s: matched %s %q, want %s %q", tc.fold, tc.path, m.Op.Name, m.Params[:m.NParam], tc.want, tc.param)
		}
	}
}

func parseTpl(tpl string) ([]config.Segment, error) { return config.ParseTemplate(tpl) }
