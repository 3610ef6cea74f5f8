package identity_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

func TestClaimValues(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(`{
		"scope": "read  write\tadmin",
		"groups": ["a", 1, 2.5, true, null, {"x": 1}, ["nested"], "b c"],
		"realm_access": {"roles": ["r1", "r2"], "deep": {"er": "x y"}},
		"https://example.com/roles": ["ns"],
		"a.b": "literal",
		"a": {"b": "nested"},
		"n": 12345678901234567890,
		"f": 1e3,
		"t": false,
		"o": {"k": "v"},
		"empty": ""
	}`))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		t.Fatal(err)
	}
	claims["float"] = 1234567890.0 // as decoded without UseNumber
	cases := map[string][]string{
		"scope":                {"read  write\tadmin"}, // whole: ScopeValues splits
		"groups":               {"a", "1", "2.5", "true", "b c"},
		"realm_access.roles":   {"r1", "r2"},
		"realm_access.deep.er": {"x y"}, // "x y" is not "y"

		"https://example.com/roles": {"ns"},
		"a.b":                       {"literal"},
		"n":                         {"12345678901234567890"},
		"f":                         {"1e3"},
		"float":                     {"1234567890"},
		"t":                         {"false"},
		"o":                         nil,
		"missing":                   nil,
		"realm_access.missing":      nil,
		"scope.x":                   nil,
		"":                          nil,
		"empty":                     {},
	}
	for path, want := range cases {
		got := identity.ClaimValues(claims, path)
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("ClaimValues(%q) = %q, want %q", path, got, want)
		}
	}
	if identity.ClaimValues(nil, "x") != nil {
		t.Error("nil claims")
	}
	// A scope claim's string is a space-separated list; elsewhere the same
	// as ClaimValues.
	for path, want := range map[string][]string{
		"scope":                {"read", "write", "admin"},
		"realm_access.deep.er": {"x", "y"},
		"groups":               {"a", "1", "2.5", "true", "b c"},
		"empty":                nil,
	} {
		if got := identity.ScopeValues(claims, path); !slices.Equal(got, want) {
			t.Errorf("ScopeValues(%q) = %q, want %q", path, got, want)
		}
	}
}
