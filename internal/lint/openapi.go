package lint

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
)

// specMethods are the methods an OpenAPI path item can hold, in the order
// findings about one path are made.
var specMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY"}

// openAPI compares every API that has an OpenAPI document with it.
func (l *linter) openAPI(ctx context.Context) {
	for i := range l.cfg.APIs {
		a := &l.cfg.APIs[i]
		if a.OpenAPI == nil || a.OpenAPI.Spec == "" {
			continue
		}
		specPath := config.Field(config.Index("apis", i), "openapi.spec")
		spec, err := gateway.LoadOpenAPI(ctx, a.OpenAPI.Spec)
		if err != nil {
			// Compiling loads the same document, so this happens only if
			// it changed since.
			l.add(Error, CodeOpenAPIUnreadable, specPath, "%s: %v", a.OpenAPI.Spec, err)
			continue
		}
		l.alignAPI(i, spec, specPath)
	}
}

// alignAPI checks the operations of one API against its document.
func (l *linter) alignAPI(i int, spec *openapi3.T, specPath string) {
	a := &l.cfg.APIs[i]
	file := a.OpenAPI.Spec
	documented := map[string]bool{} // ConfigPath + " " + method
	var paths []string
	if spec.Paths != nil {
		paths = spec.Paths.InMatchingOrder()
		sort.Strings(paths)
	}
	for _, p := range paths {
		item := spec.Paths.Value(p)
		for _, m := range specMethods {
			so := item.GetOperation(m)
			if so == nil {
				continue
			}
			name := m + " " + p
			if so.OperationID != "" {
				name += " (" + so.OperationID + ")"
			}
			op, _, miss := l.routeSpec(a, m, p)
			if op == nil {
				l.add(Info, CodeOperationNotRouted, specPath, "%s in %s is not routed by API %q: %s. Add an operation for it, or remove it from the document if the backend does not serve it",
					name, file, a.Name, miss)
				continue
			}
			mark := m
			if m == "HEAD" && !slices.Contains(op.Methods, "HEAD") {
				mark = "GET" // a GET operation answers HEAD
			}
			documented[op.ConfigPath+" "+mark] = true
			reqs := spec.Security
			if so.Security != nil {
				reqs = *so.Security
			}
			l.checkSecurity(spec, file, name, reqs, op)
		}
	}
	if len(a.Operations) == 0 {
		return
	}
	p := config.Index("apis", i)
	for j := range a.Operations {
		o := &a.Operations[j]
		opp := config.Index(config.Field(p, "operations"), j)
		var missing []string
		for _, m := range o.OperationMethods() {
			if !documented[opp+" "+m] {
				missing = append(missing, m)
			}
		}
		if len(missing) > 0 {
			l.add(Info, CodeOperationNotDocumented, opp, "%s %s is not in the OpenAPI document %s (no operation of it is routed here); document it, or remove the operation if the backend does not serve it",
				strings.Join(missing, ","), joinPath(prefixOf(a), o.Path), file)
		}
	}
}

// routeSpec finds the operation of a that serves method and the
// document's path p: p under the API's prefix, else p as it is when it
// already starts with the prefix, each on every host of the API. It
// returns the operation and the sample path, or nil and what the first
// sample met instead.
func (l *linter) routeSpec(a *config.API, method, p string) (*gateway.Operation, string, string) {
	prefix := prefixOf(a)
	rel := specSample(p)
	candidates := []string{joinPath(prefix, rel)}
	if prefix != "/" && underPrefix(rel, prefix) && rel != candidates[0] {
		candidates = append(candidates, rel)
	}
	hosts := a.Hosts
	if len(hosts) == 0 {
		hosts = []string{l.placeholder}
	}
	miss := ""
	for _, h := range hosts {
		if suffix, ok := strings.CutPrefix(h, "*"); ok {
			h = l.wildcardSample(suffix)
		}
		for _, c := range candidates {
			op, allow, found := l.snap.Route(h, method, c)
			if op != nil && op.API.Name == a.Name && op.ConfigPath != "" {
				return op, c, ""
			}
			if miss != "" {
				continue
			}
			switch {
			case op != nil:
				miss = fmt.Sprintf("%s %s is served by %s (on %s)", method, c, l.where(op), l.hostName(h))
			case found:
				miss = fmt.Sprintf("%s %s gets 405 (Allow: %s) (on %s)", method, c, allow, l.hostName(h))
			default:
				miss = fmt.Sprintf("%s %s gets 404 (on %s)", method, c, l.hostName(h))
			}
		}
	}
	return nil, "", miss
}

// specSample fills the parameters of an OpenAPI path with sample segments.
func specSample(p string) string {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	n := 0
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			n++
			segs[i] = fmt.Sprintf("%s-p%d", sampleLabel, n)
		}
	}
	return "/" + strings.Join(segs, "/")
}

// credentialKind maps a security scheme to the gateway credential type
// that carries it, as 'gatehouse import openapi' does, or "" when none
// does.
func credentialKind(s *openapi3.SecurityScheme) string {
	switch {
	case s == nil:
		return ""
	case s.Type == "oauth2" || s.Type == "openIdConnect" || s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		return "jwt"
	case s.Type == "apiKey":
		return "api_key"
	case s.Type == "mutualTLS":
		return "mtls"
	}
	return ""
}

func schemeText(name string, s *openapi3.SecurityScheme) string {
	if s == nil {
		return name + " (undefined)"
	}
	kind := s.Type
	if s.Type == "http" {
		kind += " " + s.Scheme
	}
	return name + " (" + kind + ")"
}

// checkSecurity compares a document operation's security requirement with
// the auth of the route that serves it.
func (l *linter) checkSecurity(spec *openapi3.T, file, name string, reqs openapi3.SecurityRequirements, op *gateway.Operation) {
	if len(reqs) == 0 || slices.ContainsFunc(reqs, func(r openapi3.SecurityRequirement) bool { return len(r) == 0 }) {
		return // anonymous calls are allowed
	}
	scheme := func(name string) *openapi3.SecurityScheme {
		if spec.Components == nil {
			return nil
		}
		if ref := spec.Components.SecuritySchemes[name]; ref != nil {
			return ref.Value
		}
		return nil
	}
	ref := l.ops[op.ConfigPath]
	path := l.authPath(ref)
	route := name
	if ref.op < 0 {
		route += fmt.Sprintf(" (served by API %q, which has no operations)", op.API.Name)
	}
	var all []string // every scheme of every requirement, for messages
	for _, r := range reqs {
		for _, n := range sortedKeys(r) {
			if t := schemeText(n, scheme(n)); !slices.Contains(all, t) {
				all = append(all, t)
			}
		}
	}
	auth := op.Auth
	if auth == nil || auth.Anonymous {
		l.add(Error, CodeBackendRequiresAuth, path, "%s requires %s in %s, but the gateway lets it through without authentication; give the route credentials (and require) that match, or mark the operation security: [] in the document if it is public",
			route, strings.Join(all, " or "), file)
		return
	}
	required := enforcedScopes(auth)
	var best []string // missing scopes of the accepted requirement closest to enforced
	accepted := false
	for _, r := range reqs {
		ok := false
		var scopes []string
		for _, n := range sortedKeys(r) {
			kind := credentialKind(scheme(n))
			if kind != "" && slices.Contains(auth.Credentials, kind) {
				ok = true
			}
			if kind == "jwt" {
				scopes = append(scopes, r[n]...)
			}
		}
		if !ok {
			continue
		}
		var missing []string
		for _, s := range scopes {
			if !slices.Contains(required, s) && !slices.Contains(missing, s) {
				missing = append(missing, s)
			}
		}
		if !accepted || len(missing) < len(best) {
			best = missing
		}
		accepted = true
	}
	if !accepted {
		l.add(Warning, CodeSchemeNotAccepted, path, "%s takes %s in %s, but the route accepts only credentials %s; accept the matching credential type on the route (jwt for oauth2, openIdConnect and http bearer; api_key for apiKey; mtls for mutualTLS), or fix the document",
			route, strings.Join(all, " or "), file, strings.Join(auth.Credentials, ", "))
		return
	}
	if len(best) > 0 {
		sort.Strings(best)
		l.add(Warning, CodeScopeNotEnforced, path, "%s requires scopes %s in %s, which the route does not require; add them to require.scopes.all_of",
			route, strings.Join(best, ", "), file)
	}
}

// enforcedScopes returns the scopes every caller of a route must have:
// those in require.scopes.all_of, and the only entry of any_of.
func enforcedScopes(a *config.Auth) []string {
	if a.Require == nil || a.Require.Scopes == nil {
		return nil
	}
	m := a.Require.Scopes
	out := slices.Clone(m.AllOf)
	if len(m.AnyOf) == 1 {
		out = append(out, m.AnyOf[0])
	}
	return out
}

func sortedKeys(r openapi3.SecurityRequirement) []string {
	out := make([]string, 0, len(r))
	for k := range r {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
