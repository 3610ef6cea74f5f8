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
		// A string claim is one value: a word of it is not a match.
		{"claim word is not the claim", Requirement{Claims: []ClaimMatch{{Path: "tenant", SetMatch: SetMatch{AnyOf: []string{"acme"}}}}},
			principal(nil, nil, nil, map[string]any{"tenant": "evil acme"}), false, "claim_mismatch", "tenant: one of acme"},
		{"claim words are not all_of", Requirement{Claims: []ClaimMatch{{Path: "tier", SetMatch: SetMatch{AllOf: []string{"gold", "eu"}}}}},
			principal(nil, nil, nil, map[string]any{"tier": "gold eu"}), false, "claim_mismatch", "tier: gold"},
		// The scope claims' strings are lists (an Entra ID scp).
		{"scp claim is a list", Requirement{Claims: []ClaimMatch{{Path: "scp", SetMatch: SetMatch{AnyOf: []string{"Orders.Read"}}}}},
			principal(nil, nil, nil, map[string]any{"scp": "Orders.Read User.Read"}), true, "allowed", ""},
		{"scope claim is a list", Requirement{Claims: []ClaimMatch{{Path: "scope", SetMatch: SetMatch{AllOf: []string{"a", "b"}}}}},
			principal(nil, nil, nil, map[string]any{"scope": "b a"}), true, "allowed", ""},
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

// TestAuthorize_RecordsWhatWasMet checks that the step passes a principal
// it found to meet its requirement on that record, for that principal and
// that step only, and that a denial is never recorded.
func TestAuthorize_RecordsWhatWasMet(t *testing.T) {
	req := Requirement{Scopes: SetMatch{AllOf: []string{"orders:read"}}}
	allows := func(step Step, p *identity.Principal) bool {
		reached := false
		h := step(HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { reached = true; return nil }))
		r := httptest.NewRequest("GET", "/orders", nil)
		r = r.WithContext(WithPrincipal(r.Context(), p))
		err := h.ServeHTTP(httptest.NewRecorder(), r)
		if reached != (err == nil) {
			t.Fatalf("reached=%v with err=%v", reached, err)
		}
		return reached
	}
	step := Authorize(AuthzOptions{Require: req})
	p := principal(nil, nil, []string{"orders:read"}, nil)
	if !allows(step, p) {
		t.Fatal("a principal with the scope was denied")
	}
	// A principal does not change; this one does, to show which answers
	// come from the record.
	p.Scopes = nil
	if !allows(step, p) {
		t.Fatal("the step checked again a principal it had found to meet its requirement")
	}
	if allows(Authorize(AuthzOptions{Require: req}), p) {
		t.Fatal("another step used the first step's record")
	}
	if allows(step, principal(nil, nil, nil, nil)) {
		t.Fatal("another principal passed on the first one's record")
	}

	denied := principal(nil, nil, nil, nil)
	other := Authorize(AuthzOptions{Require: req})
	if allows(other, denied) {
		t.Fatal("a principal without the scope was allowed")
	}
	denied.Scopes = []string{"orders:read"}
	if !allows(other, denied) {
		t.Fatal("a denial was recorded")
	}
}

// TestAuthorize_RecordsOfManySteps runs one principal through more steps
// than it holds records for, in turns, each answer compared with Decide's.
func TestAuthorize_RecordsOfManySteps(t *testing.T) {
	p := principal([]string{"staff"}, []string{"Reader"}, []string{"orders:read"}, nil)
	reqs := []Requirement{
		{Scopes: SetMatch{AllOf: []string{"orders:read"}}},
		{Scopes: SetMatch{AllOf: []string{"orders:write"}}},
		{Groups: SetMatch{AnyOf: []string{"staff", "ops"}}},
		{Groups: SetMatch{AnyOf: []string{"ops"}}},
		{Roles: SetMatch{AnyOf: []string{"Reader"}}},
		{Roles: SetMatch{AnyOf: []string{"Writer"}}},
		{},
		{Groups: SetMatch{AllOf: []string{"staff"}}, Scopes: SetMatch{AllOf: []string{"orders:read"}}},
		{Groups: SetMatch{AllOf: []string{"staff"}}, Scopes: SetMatch{AllOf: []string{"orders:admin"}}},
	}
	handlers := make([]Handler, len(reqs))
	for i := range reqs {
		handlers[i] = Authorize(AuthzOptions{Require: reqs[i]})(HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil }))
	}
	r := httptest.NewRequest("GET", "/", nil)
	r = r.WithContext(WithPrincipal(r.Context(), p))
	for round := range 5 {
		for k := range reqs {
			i := (k*(round+2) + round) % len(reqs) // a different order each round
			want := reqs[i].Decide(p).Allowed
			if got := handlers[i].ServeHTTP(httptest.NewRecorder(), r) == nil; got != want {
				t.Fatalf("round %d, requirement %d: allowed %v, want %v", round, i, got, want)
			}
		}
	}
}
