package gateway

import (
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/securitytest/seedcorpus"
)

// pathSeeds is the path-confusion list behind the seeds of
// FuzzNormalizePath and FuzzRouterMatch (the same attacks run end to end
// in internal/securitytest).
var pathSeeds = map[string]string{
	"dotdot": "/public/../admin/x", "dotdot_trailing": "/admin/x/..", "enc_dotdot": "/x/%2e%2e/admin",
	"enc_dotdot_upper": "/x/%2E%2E/admin", "enc_dot_mixed": "/x/.%2e/admin", "above_root": "/%2e%2e/admin",
	"enc_slash": "/admin%2fx", "enc_slash_dotdot": "/x/..%2fadmin", "double_enc": "/x/%252e%252e/admin",
	"double_enc_slash": "/x%252f..%252fadmin", "triple_enc": "/x/%25252e/admin", "backslash": "/x\\..\\admin",
	"enc_backslash": "/x%5c..%5cadmin", "double_slash": "//admin//x", "semicolon": "/admin;x=1/y",
	"semicolon_dotdot": "/x;/../admin", "enc_semicolon": "/admin%3bx", "nul": "/admin%00/x", "raw_nul": "/admin\x00",
	"overlong_dot": "/x/%c0%ae%c0%ae/admin", "overlong_slash": "/x%c0%afadmin", "overlong_e0": "/%e0%80%ae",
	"percent_u": "/x/%u002e%u002e/admin", "fullwidth_dot": "/x/%ef%bc%8e%ef%bc%8e/admin", "case": "/ADMIN/x",
	"fragment": "/admin#x", "enc_fragment": "/x%23/../admin", "enc_question": "/admin%3f/x", "space": "/admin%20/x",
	"tab": "/admin%09/x", "trailing_dot": "/admin./x", "crlf": "/a%0d%0aX-Injected:%20yes", "invalid_escape": "/a%zz",
	"truncated_escape": "/a%2", "lone_percent": "/100%", "percent_literal": "/100%25", "utf8": "/caf%C3%A9",
	"invalid_utf8": "/%ff%fe", "long_dots": "/" + strings.Repeat("../", 100) + "admin", "many_slashes": strings.Repeat("/", 300) + "admin",
	"relative": "admin", "empty": "", "asterisk": "*", "absolute": "http://x/admin",
}

func TestSeedCorpus_Gateway(t *testing.T) {
	norm := map[string][]any{}
	route := map[string][]any{}
	for name, p := range pathSeeds {
		norm[name] = []any{p, false, false}
		norm[name+"_semi_keep"] = []any{p, true, true}
		route[name] = []any{"api.example.com", "GET", p}
	}
	route["host_port"] = []any{"API.EXAMPLE.COM:443", "GET", "/orders/1"}
	route["host_ipv6"] = []any{"[::1]:8080", "GET", "/orders/1"}
	route["host_trailing_dot"] = []any{"api.example.com.", "DELETE", "/orders/files/a/b"}
	route["host_empty"] = []any{"", "", "/"}
	route["many_params"] = []any{"h", "GET", strings.Repeat("/x", 40)}
	seedcorpus.CheckSeedCorpus(t, "FuzzNormalizePath", norm)
	seedcorpus.CheckSeedCorpus(t, "FuzzRouterMatch", route)
}
