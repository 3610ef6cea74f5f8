package gateway

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
)

// openAPIDoc is an API's loaded OpenAPI document; doc is nil when it did
// not load (the problem is reported once).
type openAPIDoc struct {
	doc *openapi3.T
}

// LoadOpenAPI reads and checks an OpenAPI 3.0 or 3.1 document from a
// file. References to other local files are followed; references to URLs
// are refused (compiling never uses the network).
func LoadOpenAPI(ctx context.Context, file string) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	loader.IsExternalRefsAllowed = true
	loader.ReadFromURIFunc = func(l *openapi3.Loader, u *url.URL) ([]byte, error) {
		if u.Scheme != "" && u.Scheme != "file" {
			return nil, fmt.Errorf("reference %s: only local files can be referenced", u.Redacted())
		}
		return openapi3.ReadFromFile(l, u)
	}
	doc, err := loader.LoadFromFile(file)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		return nil, fmt.Errorf("openapi version %q is not supported (3.0 or 3.1)", doc.OpenAPI)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("invalid OpenAPI document: %v", err)
	}
	return doc, nil
}

func (c *compiler) openAPI(apiPath string, a *config.API) *openapi3.T {
	pc := c.policies()
	if d, ok := pc.openapi[a]; ok {
		return d.doc
	}
	d := &openAPIDoc{}
	pc.openapi[a] = d
	doc, err := LoadOpenAPI(c.ctx, a.OpenAPI.Spec)
	if err != nil {
		msg := firstLine(cleanFileError(err).Error())
		if !strings.HasPrefix(msg, a.OpenAPI.Spec+": ") {
			msg = a.OpenAPI.Spec + ": " + msg // not an error of the file itself
		}
		c.r.Errorf(config.Field(apiPath, "openapi.spec"), "%s", msg)
		return nil
	}
	d.doc = doc
	return doc
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// validateStep matches an operation to the document's operation with the
// same method and path shape (the path relative to the API's prefix, or
// the whole path) and returns the request-validation step.
func (c *compiler) validateStep(apiPath, opPath string, a *config.API, o *config.Operation, api *API, op *Operation) policy.Step {
	if a.OpenAPI == nil || !a.OpenAPI.ValidateRequest || o == nil {
		return nil
	}
	doc := c.openAPI(apiPath, a)
	if doc == nil {
		return nil
	}
	candidates := []string{config.TemplateShape(op.segments)}
	if full := specShape(op.Template); full != candidates[0] {
		candidates = append(candidates, full)
	}
	var specPath string
	var item *openapi3.PathItem
	if doc.Paths != nil {
		for _, p := range doc.Paths.InMatchingOrder() {
			if slices.Contains(candidates, specShape(p)) {
				specPath, item = p, doc.Paths.Value(p)
				break
			}
		}
	}
	if item == nil {
		c.r.Errorf(config.Field(opPath, "path"), "the OpenAPI document %s has no path matching %s", a.OpenAPI.Spec, op.Template)
		return nil
	}
	names := specParamNames(specPath)
	if len(names) != len(op.paramNames) {
		c.r.Errorf(config.Field(opPath, "path"), "%s has %d path parameters, the document's %s has %d", op.Template, len(op.paramNames), specPath, len(names))
		return nil
	}
	var routes []policy.OpenAPIRoute
	for _, m := range op.Methods {
		so := item.GetOperation(m)
		if so == nil {
			c.r.Errorf(opPath, "the OpenAPI document %s has no %s %s operation", a.OpenAPI.Spec, m, specPath)
			continue
		}
		r := policy.OpenAPIRoute{
			Method:     m,
			Route:      &routers.Route{Spec: doc, Path: specPath, PathItem: item, Method: m, Operation: so},
			ParamNames: names,
		}
		if so.RequestBody != nil && so.RequestBody.Value != nil {
			for mt := range so.RequestBody.Value.Content {
				if !policy.IsJSONMedia(mt) {
					r.OtherMedia = append(r.OtherMedia, mt)
				}
			}
		}
		routes = append(routes, r)
	}
	if len(routes) == 0 {
		return nil
	}
	return policy.ValidateRequest(policy.ValidateOptions{Routes: routes, Observe: c.observer(api, op, "request_validation")})
}

// specShape is an OpenAPI path template with parameter names erased.
func specShape(p string) string {
	if p == "/" {
		return ""
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			if strings.HasSuffix(s, "...}") {
				segs[i] = "{...}"
			} else {
				segs[i] = "{}"
			}
		}
	}
	return "/" + strings.Join(segs, "/")
}

func specParamNames(p string) []string {
	var names []string
	for s := range strings.SplitSeq(p, "/") {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			names = append(names, s[1:len(s)-1])
		}
	}
	return names
}
