package securitytest_test

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

// pathAttacks are request targets that try to reach /admin (which needs
// the admins group) through the anonymous "/" API, or to make the gateway
// authorize one path and forward another.
var pathAttacks = []struct {
	name, target string
	host         string // Host header; default "x"
}{
	{name: "plain", target: "/admin/x"},
	{name: "dotdot", target: "/public/../admin/x"},
	{name: "dotdot_trailing", target: "/admin/x/.."},
	{name: "dot", target: "/./admin/x"},
	{name: "enc_dotdot_lower", target: "/x/%2e%2e/admin/x"},
	{name: "enc_dotdot_upper", target: "/x/%2E%2E/admin/x"},
	{name: "enc_dotdot_mixed", target: "/x/.%2e/admin/x"},
	{name: "enc_dotdot_above_root", target: "/%2e%2e/admin/x"},
	{name: "enc_dot", target: "/%2e/admin/x"},
	{name: "enc_letter", target: "/%61dmin/x"},
	{name: "enc_slash", target: "/admin%2fx"},
	{name: "enc_slash_prefix", target: "/%2fadmin/x"},
	{name: "enc_slash_dotdot", target: "/x/..%2fadmin/x"},
	{name: "enc_slash_lower", target: "/x%2f..%2fadmin/x"},
	{name: "double_enc_dotdot", target: "/x/%252e%252e/admin/x"},
	{name: "double_enc_slash", target: "/x%252f..%252fadmin/x"},
	{name: "triple_enc", target: "/x/%25252e%25252e/admin/x"},
	{name: "backslash", target: "/x\\..\\admin\\x"},
	{name: "enc_backslash", target: "/x%5c..%5cadmin%5cx"},
	{name: "enc_backslash_upper", target: "/x/..%5Cadmin/x"},
	{name: "double_slash", target: "//admin/x"},
	{name: "triple_slash", target: "///admin//x"},
	{name: "semicolon_segment", target: "/admin;x=1/y"},
	{name: "semicolon_before", target: "/x;/../admin/x"},
	{name: "semicolon_only", target: "/;/admin/x"},
	{name: "enc_semicolon", target: "/admin%3bx/y"},
	{name: "nul", target: "/admin%00/x"},
	{name: "nul_suffix", target: "/public/x%00/../../admin/x"},
	{name: "raw_nul", target: "/admin\x00/x"},
	{name: "overlong_dot", target: "/x/%c0%ae%c0%ae/admin/x"},
	{name: "overlong_slash", target: "/x%c0%af..%c0%afadmin/x"},
	{name: "overlong_e0", target: "/x/%e0%80%ae%e0%80%ae/admin"},
	{name: "utf16_u", target: "/x/%u002e%u002e/admin/x"},
	{name: "fullwidth_dot", target: "/x/%ef%bc%8e%ef%bc%8e/admin/x"},
	{name: "case_upper", target: "/ADMIN/x"},
	{name: "case_mixed", target: "/aDmIn/x"},
	{name: "fragment", target: "/admin#/x"},
	{name: "fragment_dotdot", target: "/x#/../admin/x"},
	{name: "enc_fragment", target: "/x%23/../admin/x"},
	{name: "enc_question", target: "/admin%3f/x"},
	{name: "query_dotdot", target: "/public?/../admin/x"},
	{name: "space", target: "/admin%20/x"},
	{name: "tab", target: "/admin%09/x"},
	{name: "trailing_dot_segment", target: "/admin./x"},
	{name: "absolute_form", target: "http://x/admin/x"},
	{name: "absolute_form_dotdot", target: "http://x/public/../admin/x"},
	{name: "absolute_form_other_host", target: "http://evil.example/admin/x", host: "x"},
	{name: "absolute_form_enc", target: "http://x/%2e%2e/admin/x"},
	{name: "absolute_form_no_path", target: "http://x"},
	{name: "asterisk", target: "*"},
	{name: "authority_form", target: "x:80"},
	{name: "host_with_path", target: "/public", host: "x/admin"},
	{name: "host_at", target: "/public", host: "x@evil"},
	{name: "long_dots", target: "/" + strings.Repeat("../", 200) + "admin/x"},
	{name: "many_slashes", target: strings.Repeat("/", 500) + "admin/x"},
}

// backendViews are the ways backends have been known to read a path they
// are sent: as RFC 3986 says, decoding again, with '\' as a separator,
// dropping ;params, ignoring case. If any view of what the gateway
// forwarded is under /admin, a backend of that kind was reached without
// authorization.
func backendViews(target string) map[string]string {
	p, _, _ := strings.Cut(target, "?")
	views := map[string]string{}
	strict, err := url.PathUnescape(p)
	if err == nil {
		views["rfc3986"] = path.Clean("/" + strict)
	}
	d := p
	for range 3 {
		if u, err := url.PathUnescape(d); err == nil {
			d = u
		}
	}
	views["decode_repeatedly"] = path.Clean("/" + d)
	views["backslash"] = path.Clean("/" + strings.ReplaceAll(d, "\\", "/"))
	var segs []string
	for _, s := range strings.Split(d, "/") {
		s, _, _ = strings.Cut(s, ";")
		segs = append(segs, s)
	}
	views["strip_params"] = path.Clean("/" + strings.Join(segs, "/"))
	views["nul_truncate"], _, _ = strings.Cut(views["rfc3986"], "\x00")
	return views
}

func underAdmin(p string, fold bool) bool {
	if fold {
		p = strings.ToLower(p)
	}
	return p == "/admin" || strings.HasPrefix(p, "/admin/")
}

// Threat: path confusion. An attacker with no token, or with a token that
// lacks the admins group, dresses /admin up (dot segments, encodings,
// separators, overlong UTF-8, fragments, absolute form, Host tricks) so
// that the gateway matches the anonymous "/" API while the backend
// serves /admin. For every target: whatever was forwarded is exactly
// what the access log says was authorized, and no backend view of it is
// under /admin. Case is checked separately
// (TestPathConfusion_CaseInsensitiveBackend).
func TestPathConfusion_DenyRuleCannotBeBypassed(t *testing.T) {
	e := newEnv(t, envOptions{})
	user := e.token("staff")
	var cases, bypasses, desyncs, forwarded int
	for _, cred := range []string{"", user} {
		for _, a := range pathAttacks {
			name := a.name
			if cred != "" {
				name += "/with_user_token"
			}
			t.Run(name, func(t *testing.T) {
				e.reset()
				host := a.host
				if host == "" {
					host = "x"
				}
				raw := "GET " + a.target + " HTTP/1.1\r\nHost: " + host + "\r\n"
				if cred != "" {
					raw += "Authorization: Bearer " + cred + "\r\n"
				}
				x, err := sendRaw(e.gw.Addr, []byte(raw+"Connection: close\r\n\r\n"))
				if err != nil {
					t.Fatal(err)
				}
				cases++
				if x.Trailing != nil || len(x.Responses) != 1 {
					t.Errorf("%d responses, %v: %q", len(x.Responses), x.Trailing, x.Raw)
				}
				acc := e.settle()
				b, d := e.checkForwarded(t, acc)
				bypasses += b
				desyncs += d
				status := 0
				if len(x.Responses) > 0 {
					status = x.Responses[0].StatusCode
				}
				for _, r := range e.be.Requests() {
					forwarded++
					for view, p := range backendViews(r.Target) {
						if underAdmin(p, false) && r.Header.Get("X-Gatehouse-Groups") != "admins" {
							bypasses++
							t.Errorf("a backend reading paths %s sees %q (sent %q, forwarded %q)", view, p, a.target, r.Target)
						}
					}
					// What was forwarded decodes to what was authorized.
					dec, err := url.PathUnescape(strings.SplitN(r.Target, "?", 2)[0])
					if err != nil || len(acc) == 0 || dec != acc[len(acc)-1].Path {
						desyncs++
						t.Errorf("forwarded %q decodes to %q; the access log says %+v", r.Target, dec, acc)
					}
				}
				t.Logf("%s → %d, forwarded %d", a.target, status, len(e.be.Requests()))
			})
		}
	}
	t.Logf("FIGURE path confusion: %d requests (%d targets × 2 credentials), %d forwarded, %d bypasses, %d desynchronizations", cases, len(pathAttacks), forwarded, bypasses, desyncs)
}

// Threat: a case-insensitive backend (IIS, some Spring setups) serves
// /ADMIN as /admin. Paths are case-sensitive by default (RFC 3986), so
// /ADMIN is not the admin API and goes to the anonymous "/" API: against
// such a backend that is a bypass, and the test shows it. With
// case_insensitive_paths on the admin API, /ADMIN is matched, authorized
// and forwarded as /admin.
func TestPathConfusion_CaseInsensitiveBackend(t *testing.T) {
	targets := []string{"/ADMIN/x", "/Admin/x", "/aDmIn/X", "/ADMIN", "/%41DMIN/x"}
	t.Run("default_case_sensitive", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		for _, target := range targets {
			e.reset()
			x, err := sendRaw(e.gw.Addr, []byte("GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
			if err != nil || len(x.Responses) != 1 {
				t.Fatalf("%s: %v %v", target, err, x)
			}
			e.settle()
			got := e.be.Requests()
			if x.Responses[0].StatusCode != 200 || len(got) != 1 || got[0].Target != strings.ReplaceAll(target, "%41", "A") {
				t.Errorf("%s: status %d, backend got %d requests: want it forwarded unchanged by the anonymous API", target, x.Responses[0].StatusCode, len(got))
			}
		}
	})
	t.Run("case_insensitive_paths", func(t *testing.T) {
		e := newEnv(t, envOptions{AdminCaseInsensitive: true})
		admin := e.token("admins")
		var bypasses int
		for _, target := range targets {
			e.reset()
			x, err := sendRaw(e.gw.Addr, []byte("GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
			if err != nil || len(x.Responses) != 1 {
				t.Fatalf("%s: %v %v", target, err, x)
			}
			if x.Responses[0].StatusCode != 401 {
				t.Errorf("%s without a token: status %d, want 401", target, x.Responses[0].StatusCode)
			}
			e.settle()
			if n := len(e.be.Requests()); n != 0 {
				bypasses++
				t.Errorf("%s reached the backend without a token", target)
			}
			// With an admin token it is forwarded, lower-cased.
			e.reset()
			x, err = sendRaw(e.gw.Addr, []byte("GET "+target+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+admin+"\r\nConnection: close\r\n\r\n"))
			if err != nil || len(x.Responses) != 1 || x.Responses[0].StatusCode != 200 {
				t.Fatalf("%s with an admin token: %v %v", target, err, x.Responses)
			}
			acc := e.settle()
			got := e.be.Requests()
			if len(got) != 1 || got[0].Target != strings.ToLower(strings.ReplaceAll(target, "%41", "A")) {
				t.Errorf("%s: backend received %v, want the lower-cased path", target, got)
			}
			if len(acc) != 1 || acc[0].Path != got[0].Target {
				t.Errorf("%s: access log path %+v, forwarded %q", target, acc, got[0].Target)
			}
		}
		t.Logf("FIGURE case: %d targets, %d bypasses with case_insensitive_paths", len(targets), bypasses)
	})
}
