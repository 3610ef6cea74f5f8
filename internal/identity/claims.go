package identity

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// ClaimValues returns the values of the claim at a dotted path
// (realm_access.roles) as strings:
//   - a string is one value, whole, spaces and all: "evil acme" is not
//     "acme" (only a scope claim is a list in a string: ScopeValues);
//   - an array contributes its strings, numbers and booleans in their
//     string forms, each element whole; other elements are ignored;
//   - a number or boolean is its string form (numbers as written in the
//     token when decoded with UseNumber, else in the shortest exact form);
//   - anything else (an object, null, a missing claim) gives nil.
//
// At each level a key equal to the whole remaining path is preferred, so
// namespaced claims with dots in their names (https://example.com/roles)
// are found as they are.
func ClaimValues(claims map[string]any, path string) []string {
	return claimValues(claims, path, false)
}

// ScopeValues is ClaimValues for a scope claim, whose string is a
// space-separated list (RFC 9068 section 2.2.3, RFC 8693 section 4.2):
// a string is split on whitespace.
func ScopeValues(claims map[string]any, path string) []string {
	return claimValues(claims, path, true)
}

func claimValues(claims map[string]any, path string, split bool) []string {
	v, ok := lookupClaim(claims, path)
	if !ok {
		return nil
	}
	switch v := v.(type) {
	case string:
		if split {
			return strings.Fields(v)
		}
		if v == "" {
			return nil
		}
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := scalarString(e); ok {
				out = append(out, s)
			}
		}
		return out
	default:
		if s, ok := scalarString(v); ok {
			return []string{s}
		}
	}
	return nil
}

// lookupClaim finds the value at a dotted path, trying the longest literal
// key first at each level.
func lookupClaim(m map[string]any, path string) (any, bool) {
	if path == "" || m == nil {
		return nil, false
	}
	if v, ok := m[path]; ok {
		return v, true
	}
	for i := 0; i < len(path); i++ {
		if path[i] != '.' {
			continue
		}
		sub, ok := m[path[:i]].(map[string]any)
		if !ok {
			continue
		}
		if v, ok := lookupClaim(sub, path[i+1:]); ok {
			return v, true
		}
	}
	return nil, false
}

// scalarString formats a JSON string, number or boolean.
func scalarString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	case int:
		return strconv.Itoa(v), true
	case int64:
		return strconv.FormatInt(v, 10), true
	}
	return "", false
}

// claimString returns the single string (or number) at path, for the
// subject; "" when absent, empty or of another type.
func claimString(claims map[string]any, path string) string {
	v, ok := lookupClaim(claims, path)
	if !ok {
		return ""
	}
	switch v.(type) {
	case string, json.Number, float64:
		s, _ := scalarString(v)
		return s
	}
	return ""
}

var errNotNumericDate = errors.New("not a number")

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are clamped to it.
const maxNumericDate = 253402300799

// numericDate reads an RFC 7519 NumericDate claim: seconds since the
// epoch, possibly fractional. present is false when the claim is absent.
func numericDate(claims map[string]any, name string) (t time.Time, present bool, err error) {
	v, ok := claims[name]
	if !ok {
		return time.Time{}, false, nil
	}
	var f float64
	switch v := v.(type) {
	case json.Number:
		f, err = strconv.ParseFloat(string(v), 64)
		if err != nil {
			return time.Time{}, true, errNotNumericDate
		}
	case float64:
		f = v
	default:
		return time.Time{}, true, errNotNumericDate
	}
	if math.IsNaN(f) {
		return time.Time{}, true, errNotNumericDate
	}
	f = max(min(f, maxNumericDate), -maxNumericDate)
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true, nil
}

// AudienceMatches reports whether the aud claim (a string or an array of
// strings, RFC 7519 §4.1.3) contains one of the accepted audiences.
func AudienceMatches(aud any, accepted []string) bool {
	switch aud := aud.(type) {
	case string:
		return contains(accepted, aud)
	case []any:
		for _, a := range aud {
			if s, ok := a.(string); ok && contains(accepted, s) {
				return true
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
