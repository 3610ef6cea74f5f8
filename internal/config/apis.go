package config

import (
	"fmt"
	"sort"
	"strings"
)

// SegmentKind is the kind of one segment of a path template.
type SegmentKind uint8

// Segment kinds.
const (
	Literal  SegmentKind = iota // /orders
	Param                       // /{id}: exactly one non-empty segment
	CatchAll                    // /{rest...}: the rest of the path, possibly empty
)

// Segment is one part of a parsed path template.
type Segment struct {
	Kind  SegmentKind
	Value string // the literal text, or the parameter name
}

// ParseTemplate parses an operation path such as /orders/{id} or
// /files/{path...}. "/" is the empty template (the prefix itself).
func ParseTemplate(tpl string) ([]Segment, error) {
	if !strings.HasPrefix(tpl, "/") {
		return nil, fmt.Errorf("path %q must start with '/'", tpl)
	}
	if tpl == "/" {
		return nil, nil
	}
	parts := strings.Split(tpl[1:], "/")
	segs := make([]Segment, 0, len(parts))
	names := map[string]bool{}
	for i, part := range parts {
		switch {
		case part == "":
			return nil, fmt.Errorf("path %q has an empty segment", tpl)
		case part == "." || part == "..":
			return nil, fmt.Errorf("path %q has a dot segment", tpl)
		case strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}"):
			name := part[1 : len(part)-1]
			kind := Param
			if n, ok := strings.CutSuffix(name, "..."); ok {
				if i != len(parts)-1 {
					return nil, fmt.Errorf("path %q: {%s} may only be the last segment", tpl, name)
				}
				name, kind = n, CatchAll
			}
			if !paramRE.MatchString(name) {
				return nil, fmt.Errorf("path %q: parameter name %q must be letters, digits and '_'", tpl, name)
			}
			if names[name] {
				return nil, fmt.Errorf("path %q: parameter {%s} appears twice", tpl, name)
			}
			names[name] = true
			segs = append(segs, Segment{Kind: kind, Value: name})
		case strings.ContainsAny(part, "{}"):
			return nil, fmt.Errorf("path %q: a parameter must be a whole segment, like /{id}", tpl)
		default:
			if err := checkLiteral(part); err != nil {
				return nil, fmt.Errorf("path %q: %v", tpl, err)
			}
			segs = append(segs, Segment{Kind: Literal, Value: part})
		}
	}
	return segs, nil
}

// checkLiteral accepts a literal path segment written as it is matched:
// decoded text, without characters that normalization would reject.
func checkLiteral(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x7f || c == '\\' || c == '%' || c == '?' || c == '#' {
			return fmt.Errorf("segment %q contains %q; write literal segments decoded, without spaces, '%%', '\\', '?' or '#'", s, string(c))
		}
	}
	return nil
}

// TemplateShape is a template with parameter names erased, so that two
// templates that match the same paths compare equal.
func TemplateShape(segs []Segment) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		switch s.Kind {
		case Literal:
			b.WriteString(s.Value)
		case Param:
			b.WriteString("{}")
		case CatchAll:
			b.WriteString("{...}")
		}
	}
	return b.String()
}

// OperationMethods returns the methods of an operation, whichever key wrote them.
func (o *Operation) OperationMethods() []string {
	if o.Method != "" {
		return []string{o.Method}
	}
	return o.Methods
}

// EffectiveAuth returns the auth requirement that applies to op in api.
func EffectiveAuth(api *API, op *Operation) *Auth {
	if op != nil && op.Auth != nil {
		return op.Auth
	}
	return api.Auth
}

func (v *validator) apis() {
	names := map[string]bool{}
	routes := map[string]string{} // host + prefix → path of the API that has it
	for i := range v.c.APIs {
		api := &v.c.APIs[i]
		p := Index("apis", i)
		v.name(Field(p, "name"), "API", api.Name, names)
		if api.Backend != "" && !v.backendNames[api.Backend] {
			v.r.Errorf(Field(p, "backend"), "unknown backend %q%s", api.Backend, didYouMean(api.Backend, keys(v.backendNames)))
		}
		prefix := api.PathPrefix
		if prefix != "" {
			if err := checkPrefix(prefix); err != nil {
				v.r.Errorf(Field(p, "path_prefix"), "%v", err)
			}
		}
		hosts := api.Hosts
		if len(hosts) == 0 {
			hosts = []string{"*"}
		}
		for j, h := range api.Hosts {
			if !hostRE.MatchString(h) {
				v.r.Errorf(Index(Field(p, "hosts"), j), "invalid host %q: lower-case DNS name, optionally *.domain (no port)", h)
			}
		}
		norm := NormalizePrefix(prefix)
		for _, h := range hosts {
			k := h + " " + norm
			if other, dup := routes[k]; dup {
				v.r.Errorf(Field(p, "path_prefix"), "host %q and prefix %q are already routed by %s", h, norm, other)
			}
			routes[k] = p
		}
		if api.MaxBody.Set && api.MaxBody.Bytes <= 0 {
			v.r.Errorf(Field(p, "max_body"), "must be greater than zero")
		}
		if api.Auth != nil {
			v.auth(Field(p, "auth"), api.Auth)
		}
		if len(api.Operations) == 0 && api.Auth == nil {
			v.r.Errorf(p, "API %q has no auth requirement: set auth, or auth: {anonymous: true} to allow unauthenticated calls (default deny)", api.Name)
		}
		v.operations(p, api)
	}
}

func (v *validator) operations(p string, api *API) {
	opNames := map[string]bool{}
	shapes := map[string]string{}
	for j := range api.Operations {
		op := &api.Operations[j]
		op.Method = strings.TrimSpace(op.Method)
		opp := Index(Field(p, "operations"), j)
		if op.Name != "" {
			if opNames[op.Name] {
				v.r.Errorf(Field(opp, "name"), "duplicate operation name %q", op.Name)
			}
			opNames[op.Name] = true
		}
		methods := op.OperationMethods()
		switch {
		case op.Method != "" && len(op.Methods) > 0:
			v.r.Errorf(opp, "set method or methods, not both")
		case len(methods) == 0:
			v.r.Errorf(opp, "needs a method (or methods)")
		}
		for k, m := range methods {
			mp := Field(opp, "method")
			if op.Method == "" {
				mp = Index(Field(opp, "methods"), k)
			}
			if !methodRE.MatchString(m) {
				v.r.Errorf(mp, "invalid method %q: upper-case, such as GET or POST", m)
			}
		}
		if op.Path == "" {
			continue
		}
		segs, err := ParseTemplate(op.Path)
		if err != nil {
			v.r.Errorf(Field(opp, "path"), "%v", err)
			continue
		}
		shape := TemplateShape(segs)
		for _, m := range methods {
			k := m + " " + shape
			if other, dup := shapes[k]; dup {
				v.r.Errorf(Field(opp, "path"), "%s %s matches the same requests as %s", m, op.Path, other)
			}
			shapes[k] = opp
		}
		if op.Auth != nil {
			v.auth(Field(opp, "auth"), op.Auth)
		} else if api.Auth == nil {
			v.r.Errorf(opp, "operation %s %s has no auth requirement and the API has none: set auth, or auth: {anonymous: true} to allow unauthenticated calls (default deny)", strings.Join(methods, ","), op.Path)
		}
	}
}

// NormalizePrefix returns the canonical form of a path prefix: "/" when
// empty, without a trailing slash otherwise.
func NormalizePrefix(p string) string {
	if p == "" || p == "/" {
		return "/"
	}
	return strings.TrimSuffix(p, "/")
}

func checkPrefix(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("path prefix %q must start with '/'", p)
	}
	trimmed := strings.Trim(p, "/")
	if trimmed == "" {
		return nil
	}
	for seg := range strings.SplitSeq(trimmed, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("path prefix %q has an empty or dot segment", p)
		}
		if strings.ContainsAny(seg, "{}") {
			return fmt.Errorf("path prefix %q cannot have parameters; put them in operation paths", p)
		}
		if err := checkLiteral(seg); err != nil {
			return fmt.Errorf("path prefix %q: %v", p, err)
		}
	}
	return nil
}

func (v *validator) auth(p string, a *Auth) {
	if a.Anonymous {
		if len(a.Credentials) > 0 || len(a.Issuers) > 0 || a.Require != nil {
			v.r.Errorf(p, "anonymous: true cannot be combined with credentials, issuers or require")
		}
		return
	}
	if len(a.Credentials) == 0 {
		v.r.Errorf(p, "needs credentials (jwt, api_key, mtls), or anonymous: true")
	}
	seen := map[string]bool{}
	for i, c := range a.Credentials {
		cp := Index(Field(p, "credentials"), i)
		switch c {
		case "jwt":
			if len(v.c.IdentityProviders) == 0 {
				v.r.Errorf(cp, "jwt needs at least one identity provider in identity_providers")
			}
		case "api_key":
		case "mtls":
			if !v.mtls {
				v.r.Errorf(cp, "mtls needs a TLS listener with client_ca_file")
			}
		default:
			v.r.Errorf(cp, "unknown credential type %q (known: jwt, api_key, mtls)", c)
		}
		if seen[c] {
			v.r.Errorf(cp, "credential type %q is listed twice", c)
		}
		seen[c] = true
	}
	if len(a.Issuers) > 0 && !seen["jwt"] {
		v.r.Errorf(Field(p, "issuers"), "issuers applies to jwt credentials, which this requirement does not accept")
	}
	for i, iss := range a.Issuers {
		if !v.providers[iss] {
			v.r.Errorf(Index(Field(p, "issuers"), i), "unknown identity provider %q%s", iss, didYouMean(iss, keys(v.providers)))
		}
	}
	if r := a.Require; r != nil {
		rp := Field(p, "require")
		v.match(Field(rp, "groups"), r.Groups)
		v.match(Field(rp, "roles"), r.Roles)
		v.match(Field(rp, "scopes"), r.Scopes)
		for claim, m := range r.Claims {
			cp := Key(Field(rp, "claims"), claim)
			if !validClaimPath(claim) {
				v.r.Errorf(cp, "invalid claim path %q", claim)
			}
			if m == nil {
				v.r.Errorf(cp, "needs any_of or all_of")
				continue
			}
			v.match(cp, m)
		}
	}
}

func (v *validator) match(p string, m *Match) {
	if m == nil {
		return
	}
	if len(m.AnyOf) == 0 && len(m.AllOf) == 0 {
		v.r.Errorf(p, "needs a non-empty any_of or all_of")
	}
	for i, s := range m.AnyOf {
		if s == "" {
			v.r.Errorf(Index(Field(p, "any_of"), i), "must not be empty")
		}
	}
	for i, s := range m.AllOf {
		if s == "" {
			v.r.Errorf(Index(Field(p, "all_of"), i), "must not be empty")
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func didYouMean(s string, candidates []string) string {
	if c := suggest(s, candidates); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}
