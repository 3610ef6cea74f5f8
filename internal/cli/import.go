package cli

import (
	"fmt"
	"io"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
)

func (s *streams) importCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Write configuration from other descriptions (OpenAPI)",
	}
	var o importOptions
	oa := &cobra.Command{
		Use:   "openapi SPEC --backend NAME",
		Short: "Write an API's configuration from an OpenAPI 3.0/3.1 document",
		Long: `Write, to stdout, the YAML of one API built from an OpenAPI document: an
operation per method and path (named by operationId), request validation
against the document, and auth from its security requirements:
  oauth2 / openIdConnect / http bearer  → credentials: [jwt] and the scopes as require.scopes.all_of
  apiKey                                → credentials: [api_key]
  mutualTLS                             → credentials: [mtls]
  security: [] (or none at all)         → anonymous: true
Several alternative requirements are merged: every credential type they name
is accepted, and the scopes of all of them are required (stricter than the
document, never looser). An alternative that is empty ({}) makes the
operation anonymous. Notes about such merges go to stderr.

The output passes 'gatehouse validate' once the backend exists (and, for jwt,
an identity provider). See docs/policies.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.backend == "" {
				return fmt.Errorf("--backend is required")
			}
			o.spec = args[0]
			return importOpenAPI(cmd, o, s.out, s.err)
		},
	}
	oa.Flags().StringVar(&o.backend, "backend", "", "name of the backend the API routes to (required)")
	oa.Flags().StringVar(&o.name, "name", "", "API name (default: from the document's title)")
	oa.Flags().StringVar(&o.prefix, "prefix", "", "path prefix (default: the path of the document's first server URL, or /)")
	cmd.AddCommand(oa)
	return cmd
}

type importOptions struct {
	spec, backend, name, prefix string
}

// Output types: only what an imported API sets, so the YAML stays short.
type importedConfig struct {
	APIs []importedAPI `yaml:"apis"`
}

type importedAPI struct {
	Name       string              `yaml:"name"`
	PathPrefix string              `yaml:"path_prefix,omitempty"`
	Backend    string              `yaml:"backend"`
	OpenAPI    importedSpec        `yaml:"openapi"`
	Operations []importedOperation `yaml:"operations"`
}

type importedSpec struct {
	Spec            string `yaml:"spec"`
	ValidateRequest bool   `yaml:"validate_request"`
}

type importedOperation struct {
	Name   string       `yaml:"name,omitempty"`
	Method string       `yaml:"method"`
	Path   string       `yaml:"path"`
	Auth   importedAuth `yaml:"auth"`
}

type importedAuth struct {
	Anonymous   bool             `yaml:"anonymous,omitempty"`
	Credentials []string         `yaml:"credentials,omitempty,flow"`
	Require     *importedRequire `yaml:"require,omitempty"`
}

type importedRequire struct {
	Scopes importedMatch `yaml:"scopes"`
}

type importedMatch struct {
	AllOf []string `yaml:"all_of,flow"`
}

var (
	slugRE  = regexp.MustCompile(`[^a-z0-9]+`)
	paramRE = regexp.MustCompile(`[^A-Za-z0-9_]`)
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

func importOpenAPI(cmd *cobra.Command, o importOptions, out, errw io.Writer) error {
	doc, err := gateway.LoadOpenAPI(cmd.Context(), o.spec)
	if err != nil {
		return fmt.Errorf("%s: %v", o.spec, err)
	}
	warn := func(format string, args ...any) { fmt.Fprintf(errw, "note: "+format+"\n", args...) }
	api := importedAPI{Name: o.name, Backend: o.backend, PathPrefix: o.prefix,
		OpenAPI: importedSpec{Spec: o.spec, ValidateRequest: true}}
	if api.Name == "" {
		title := ""
		if doc.Info != nil {
			title = doc.Info.Title
		}
		api.Name = strings.Trim(slugRE.ReplaceAllString(strings.ToLower(title), "-"), "-")
		if len(api.Name) > 64 {
			api.Name = strings.Trim(api.Name[:64], "-")
		}
		if api.Name == "" {
			api.Name = "api"
		}
	}
	if !nameRE.MatchString(api.Name) {
		return fmt.Errorf("API name %q is not valid; give one with --name", api.Name)
	}
	if api.PathPrefix == "" && len(doc.Servers) > 0 {
		if u, err := url.Parse(doc.Servers[0].URL); err == nil && !strings.Contains(u.Path, "{") {
			api.PathPrefix = path.Clean("/" + u.Path)
		}
	}
	if api.PathPrefix == "/" {
		api.PathPrefix = ""
	}
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY"}
	names := map[string]bool{}
	var paths []string
	if doc.Paths != nil {
		paths = doc.Paths.InMatchingOrder()
		sort.Strings(paths)
	}
	for _, p := range paths {
		item := doc.Paths.Value(p)
		tpl, err := gatewayTemplate(p)
		if err != nil {
			warn("%s skipped: %v", p, err)
			continue
		}
		for _, m := range methods {
			so := item.GetOperation(m)
			if so == nil {
				continue
			}
			op := importedOperation{Name: so.OperationID, Method: m, Path: tpl}
			if op.Name != "" && names[op.Name] {
				warn("%s %s: operationId %q is used twice; the operation is named by method and path", m, p, op.Name)
				op.Name = ""
			}
			names[op.Name] = true
			security := doc.Security
			if so.Security != nil {
				security = *so.Security
			}
			op.Auth = importAuth(doc, security, func(msg string) { warn("%s %s: %s", m, p, msg) })
			api.Operations = append(api.Operations, op)
		}
	}
	if len(api.Operations) == 0 {
		return fmt.Errorf("%s has no operation to import", o.spec)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Generated by 'gatehouse import openapi' from %s (OpenAPI %s).\n", o.spec, doc.OpenAPI)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(importedConfig{APIs: []importedAPI{api}}); err != nil {
		return err
	}
	_, err = io.WriteString(out, b.String())
	return err
}

// gatewayTemplate turns an OpenAPI path into a gateway path template,
// renaming parameters the gateway's syntax refuses (request validation
// matches parameters by position, so names may differ).
func gatewayTemplate(p string) (string, error) {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			name := paramRE.ReplaceAllString(s[1:len(s)-1], "_")
			if name == "" || name[0] >= '0' && name[0] <= '9' {
				name = "p" + name
			}
			segs[i] = "{" + name + "}"
		}
	}
	tpl := "/" + strings.Join(segs, "/")
	if _, err := config.ParseTemplate(tpl); err != nil {
		return "", err
	}
	return tpl, nil
}

// importAuth turns security requirements into an auth requirement.
func importAuth(doc *openapi3.T, reqs openapi3.SecurityRequirements, note func(string)) importedAuth {
	if len(reqs) == 0 {
		return importedAuth{Anonymous: true}
	}
	creds := map[string]bool{}
	var scopes []string
	for _, req := range reqs {
		if len(req) == 0 {
			if len(reqs) > 1 {
				note("one alternative needs no credentials, so the operation is anonymous")
			}
			return importedAuth{Anonymous: true}
		}
		if len(req) > 1 {
			note("a requirement combines several schemes; the gateway accepts any one of their credential types")
		}
		for name, sc := range req {
			var scheme *openapi3.SecurityScheme
			if doc.Components != nil {
				if ref := doc.Components.SecuritySchemes[name]; ref != nil {
					scheme = ref.Value
				}
			}
			if scheme == nil {
				note(fmt.Sprintf("security scheme %q is not defined; ignored", name))
				continue
			}
			switch {
			case scheme.Type == "oauth2" || scheme.Type == "openIdConnect" ||
				scheme.Type == "http" && strings.EqualFold(scheme.Scheme, "bearer"):
				creds["jwt"] = true
				for _, s := range sc {
					if !slices.Contains(scopes, s) {
						scopes = append(scopes, s)
					}
				}
			case scheme.Type == "apiKey":
				creds["api_key"] = true
				if scheme.In != "header" {
					note(fmt.Sprintf("API key scheme %q is sent in the %s; the gateway reads API keys from the api_keys.header header", name, scheme.In))
				}
			case scheme.Type == "mutualTLS":
				creds["mtls"] = true
			default:
				note(fmt.Sprintf("security scheme %q (%s %s) has no gateway equivalent; ignored", name, scheme.Type, scheme.Scheme))
			}
		}
	}
	if len(reqs) > 1 && len(scopes) > 0 {
		note("alternative requirements are merged: the scopes of all of them are required")
	}
	var a importedAuth
	for _, c := range []string{"jwt", "api_key", "mtls"} {
		if creds[c] {
			a.Credentials = append(a.Credentials, c)
		}
	}
	if len(a.Credentials) == 0 {
		note("no usable security scheme; the operation gets jwt credentials (default deny)")
		a.Credentials = []string{"jwt"}
	}
	if len(scopes) > 0 {
		sort.Strings(scopes)
		a.Require = &importedRequire{Scopes: importedMatch{AllOf: scopes}}
	}
	return a
}
