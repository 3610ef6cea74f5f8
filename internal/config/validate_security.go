package config

import (
	"strings"
)

// caseInsensitivePaths checks the APIs with case_insensitive_paths: their
// path prefix and operation paths are written in lower case (they are
// matched against the lower-cased request path), and no other API on an
// overlapping host has the same prefix in another case, which would make
// the route of /Admin depend on the order of the APIs.
func (v *validator) caseInsensitivePaths() {
	for i := range v.c.APIs {
		api := &v.c.APIs[i]
		if !api.CaseInsensitivePaths {
			continue
		}
		p := Index("apis", i)
		if hasUpperASCII(api.PathPrefix) {
			v.r.Errorf(Field(p, "path_prefix"), "with case_insensitive_paths, write the path prefix in lower case (%q)", strings.ToLower(api.PathPrefix))
		}
		for j := range api.Operations {
			op := &api.Operations[j]
			if hasUpperASCII(literalPart(op.Path)) {
				v.r.Errorf(Field(Index(Field(p, "operations"), j), "path"), "with case_insensitive_paths, write the literal parts of the path in lower case")
			}
		}
		mine := strings.ToLower(NormalizePrefix(api.PathPrefix))
		for k := range v.c.APIs {
			other := &v.c.APIs[k]
			if k == i || !hostsOverlap(api.Hosts, other.Hosts) {
				continue
			}
			theirs := NormalizePrefix(other.PathPrefix)
			if theirs != NormalizePrefix(api.PathPrefix) && strings.ToLower(theirs) == mine {
				v.r.Errorf(Field(p, "path_prefix"), "prefix %q differs only in case from the prefix %q of API %q; with case_insensitive_paths both would match the same requests", api.PathPrefix, other.PathPrefix, other.Name)
			}
		}
	}
}

// literalPart drops the {parameters} of a path template.
func literalPart(tpl string) string {
	var b strings.Builder
	depth := 0
	for _, c := range tpl {
		switch {
		case c == '{':
			depth++
		case c == '}':
			depth--
		case depth == 0:
			b.WriteRune(c)
		}
	}
	return b.String()
}

func hasUpperASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// hostsOverlap reports whether two APIs can receive requests for one host
// (an empty list means any host).
func hostsOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, h := range a {
		for _, g := range b {
			if h == g || strings.HasPrefix(h, "*") || strings.HasPrefix(g, "*") {
				return true
			}
		}
	}
	return false
}
