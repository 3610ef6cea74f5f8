package policy

import (
	"net/http"
	"testing"
)

func TestCORS_Decisions(t *testing.T) {
	o := CORSOptions{
		Origins:  []string{"https://app.example.com"},
		Patterns: []OriginPattern{{Scheme: "https", Suffix: ".example.org"}, {Scheme: "http", Suffix: ".local.test", Port: "8080"}},
		Methods:  []string{"GET", "POST"},
		Headers:  []string{"content-type", "authorization"},
		Expose:   []string{"RateLimit"},
		MaxAge:   300,
	}
	pre := func(origin, method, headers string) map[string]string {
		return map[string]string{"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
	}
	cases := []struct {
		name   string
		opts   CORSOptions
		method string
		hdr    map[string]string
		status int
		passed bool
		acao   string
		reason string
	}{
		{"no origin: not CORS", o, "GET", nil, 200, true, "", ""},
		{"actual request, allowed origin", o, "GET", map[string]string{"Origin": "https://app.example.com"}, 200, true, "https://app.example.com", ""},
		{"origin compared without case", o, "GET", map[string]string{"Origin": "HTTPS://APP.EXAMPLE.COM"}, 200, true, "HTTPS://APP.EXAMPLE.COM", ""},
		{"actual request, other origin: no CORS headers", o, "GET", map[string]string{"Origin": "https://evil.test"}, 200, true, "", ""},
		{"preflight allowed", o, "OPTIONS", pre("https://app.example.com", "POST", "Content-Type, Authorization"), 204, false, "https://app.example.com", ""},
		{"preflight, wildcard subdomain", o, "OPTIONS", pre("https://x.example.org", "GET", ""), 204, false, "https://x.example.org", ""},
		{"preflight, wildcard needs a label", o, "OPTIONS", pre("https://.example.org", "GET", ""), 403, false, "", "cors_rejected"},
		{"preflight, lookalike domain", o, "OPTIONS", pre("https://evilexample.org", "GET", ""), 403, false, "", "cors_rejected"},
		{"preflight, wildcard with port", o, "OPTIONS", pre("http://a.local.test:8080", "GET", ""), 204, false, "http://a.local.test:8080", ""},
		{"preflight, wrong port", o, "OPTIONS", pre("http://a.local.test:9090", "GET", ""), 403, false, "", "cors_rejected"},
		{"preflight, scheme differs", o, "OPTIONS", pre("http://app.example.com", "GET", ""), 403, false, "", "cors_rejected"},
		{"preflight, method not allowed", o, "OPTIONS", pre("https://app.example.com", "DELETE", ""), 403, false, "", "cors_rejected"},
		{"preflight, header not allowed", o, "OPTIONS", pre("https://app.example.com", "GET", "x-admin"), 403, false, "", "cors_rejected"},
		{"any origin without credentials answers *", CORSOptions{AnyOrigin: true, Methods: []string{"GET"}}, "GET", map[string]string{"Origin": "https://x.test"}, 200, true, "*", ""},
		{"any header", CORSOptions{AnyOrigin: true, AnyHeader: true, Methods: []string{"GET"}}, "OPTIONS", pre("https://x.test", "GET", "x-anything"), 204, false, "*", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, err, passed := run(CORS(tc.opts), request(tc.method, "/", "192.0.2.1", nil, tc.hdr))
			status := w.Code
			if err != nil {
				status = err.Status
				if err.Reason != tc.reason {
					t.Errorf("reason %q, want %q", err.Reason, tc.reason)
				}
			}
			if status != tc.status || passed != tc.passed {
				t.Fatalf("status %d, passed %v; want %d, %v", status, passed, tc.status, tc.passed)
			}
			if got := w.Header().Get("Access-Control-Allow-Origin"); got != tc.acao {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.acao)
			}
			if status == http.StatusNoContent && w.Header().Get("Access-Control-Max-Age") == "" {
				t.Error("no Access-Control-Max-Age")
			}
		})
	}
}
