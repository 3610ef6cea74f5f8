package policy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

func principal(groups, roles, scopes []string, claims map[string]any) *identity.Principal {
	p := identity.NewStaticPrincipal(identity.CredentialJWT, "alice", "", groups, roles, scopes)
	p.Claims = claims
	return p
}

func TestRequirementDecide(t *testing.T) {
	p := principal([]string{"staff", "ops"}, []string{"Reader"}, []string{"orders:read", "orders:write"},
		map[string]any{"tenant": "acme", "tier": []any{"gold", "eu"}, "org": map[string]any{"id": "42"}})
	tests := []struct {
		name    string
		req     Requirement
		p       *identity.Principal
		allowed bool
		reason  string
		missing string
	}{
		{"empty requirement allows any principal", Requirement{}, p, true, "allowed", ""},
		{"no principal", Requirement{}, nil, false, "no_principal", ""},
		{"all scopes present", Requirement{Scopes: SetMatch{AllOf: []string{"orders:read", "orders:write"}}}, p, true, "allowed", ""},
		{"one scope missing", Requirement{Scopes: SetMatch{AllOf: []string{"orders:read", "orders:admin"}}}, p, false, "missing_scope", "orders:admin"},
		{"any group matches", Requirement{Groups: SetMatch{AnyOf: []string{"admins", "ops"}}}, p, true, "allowed", ""},
		{"no group matches", Requirement{Groups: SetMatch{AnyOf: []string{"admins", "root"}}}, p, false, "missing_group", "one of admins, root"},
		{"all groups needed", Requirement{Groups: SetMatch{AllOf: []string{"staff", "admins"}}}, p, false, "missing_group", "admins"},
		{"role matches", Requirement{Roles: SetMatch{AnyOf: []string{"Reader"}}}, p, true, "allowed", ""},
		{"role case matters", Requirement{Roles: SetMatch{AnyOf: []string{"reader"}}}, p, false, "missing_role", "one of reader"},
		{"claim string", Requirement{Claims: []ClaimMatch{{Path: "tenant", SetMatch: SetMatch{AnyOf: []string{"acme"}}}}}, p, true, "allowed", ""},
		{"claim array all_of", Requirement{Claims: []ClaimMatch{{Path: "tier", SetMatch: SetMatch{AllOf: []string{"gold", "eu"}}}}}, p, true, "allowed", ""},
		{"nested claim", Requirement{Claims: []ClaimMatch{{Path: "org.id", SetMatch: SetMatch{AnyOf: []string{"42"}}}}}, p, true, "allowed", ""},
		{"claim mismatch", Requirement{Claims: []ClaimMatch{{Path: "tenant", SetMatch: SetMatch{AnyOf: []string{"globex"}}}}}, p, false, "claim_mismatch", "tenant: one of globex"},
		{"absent claim", Requirement{Claims: []ClaimMatch{{Path: "nope", SetMatch: SetMatch{AnyOf: []string{"x"}}}}}, p, false, "claim_mismatch", "nope: one of x"},
		{"scopes are checked first", Requirement{Scopes: SetMatch{AllOf: []string{"x"}}, Groups: SetMatch{AnyOf: []string{"y"}}}, p, false, "missing_scope", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.req.Decide(tt.p)
			if d.Allowed != tt.allowed || d.Reason != tt.reason || d.Missing != tt.missing {
				t.Fatalf("got %+v, want allowed=%v reason=%q missing=%q", d, tt.allowed, tt.reason, tt.missing)
			}
		})
	}
}

func TestAuthorize_DenialCarriesInsufficientScope(t *testing.T) {
	step := Authorize(AuthzOptions{Realm: "gatehouse", Require: Requirement{Scopes: SetMatch{AllOf: []string{"orders:write"}}}})
	reached := false
	h := step(HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { reached = true; return nil }))
	r := httptest.NewRequest("POST", "/orders", nil)
	r = r.WithContext(WithPrincipal(r.Context(), principal(nil, nil, []string{"orders:read"}, nil)))
	err := h.ServeHTTP(httptest.NewRecorder(), r)
	pe := AsError(err)
	if reached || pe.Status != 403 || pe.Reason != "forbidden:missing_scope" {
		t.Fatalf("reached=%v err=%v", reached, err)
	}
	if ch := pe.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `scope="orders:write"`) {
		t.Fatalf("challenge %q", ch)
	}
}

func TestAuthorize_GroupDenialDoesNotNameTheGroup(t *testing.T) {
	step := Authorize(AuthzOptions{Require: Requirement{Groups: SetMatch{AnyOf: []string{"secret-admins"}}}})
	h := step(HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil }))
	r := httptest.NewRequest("GET", "/", nil)
	r = r.WithContext(WithPrincipal(r.Context(), principal([]string{"staff"}, nil, nil, nil)))
	pe := AsError(h.ServeHTTP(httptest.NewRecorder(), r))
	if strings.Contains(pe.Detail, "secret-admins") || strings.Contains(pe.Header.Get("WWW-Authenticate"), "secret-admins") {
		t.Fatalf("the required group leaked to the client: %q", pe.Detail)
	}
	if !strings.Contains(pe.Cause.Error(), "secret-admins") {
		t.Fatalf("the log cause should name it: %v", pe.Cause)
	}
}

func TestBearerChallengeEscapesQuotes(t *testing.T) {
	got := BearerChallenge("r\"e", "invalid_token", "bad \"x\"\n", "")
	if got != `Bearer realm="re", error="invalid_token", error_description="bad x"` {
		t.Fatalf("%s", got)
	}
}
