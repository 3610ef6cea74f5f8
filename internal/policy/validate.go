package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// MaxViolations bounds the violations listed in one 400 response.
const MaxViolations = 20

// OpenAPIRoute is an operation of an OpenAPI document, matched at compile
// time to a gateway operation for one method.
type OpenAPIRoute struct {
	Method string
	Route  *routers.Route
	// ParamNames are the document's names of the path parameters, in the
	// order of the gateway operation's template.
	ParamNames []string
	// OtherMedia lists the non-JSON media types of the request body: a
	// body of those types is not validated.
	OtherMedia []string

	// single lists the query, header and cookie parameters that take one
	// value, query the query parameters (both set by ValidateRequest).
	single []singleParam
	query  []queryParam
}

// ValidateOptions configure request validation for one operation.
type ValidateOptions struct {
	Routes  []OpenAPIRoute
	Observe func(outcome string)
}

// Violation is one way a request breaks the OpenAPI document.
type Violation struct {
	// In is where: path, query, header, cookie or body.
	In string `json:"in"`
	// Field is the parameter name, or a JSON pointer into the body.
	Field   string `json:"field"`
	Message string `json:"message"`
}

// A request is validated first up to its first violation: listing every
// violation of a large body costs without bound (a 10 MB array of the
// wrong type gives five million errors, over a gigabyte). Only a request
// whose body is at most listBodyLimit bytes is validated again to list
// its violations (up to MaxViolations of them).
var (
	validateOptions           = &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, SkipSettingDefaults: true}
	validateOptionsNoBody     = &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, SkipSettingDefaults: true, ExcludeRequestBody: true}
	validateOptionsList       = &openapi3filter.Options{MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, SkipSettingDefaults: true}
	validateOptionsListNoBody = &openapi3filter.Options{MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, SkipSettingDefaults: true, ExcludeRequestBody: true}
	pointerEscaper            = strings.NewReplacer("~", "~0", "/", "~1")
)

// listBodyLimit is the largest body whose violations are all listed.
const listBodyLimit = 16 << 10

// smallBody reports whether a body is at most listBodyLimit bytes: read
// is what validation read of it, declared its Content-Length (-1 when not
// known). A body not read (validation stopped at a parameter) counts by
// its declared length, and as large when that is unknown.
func smallBody(read, declared int64) bool {
	if read == 0 {
		return declared >= 0 && declared <= listBodyLimit
	}
	return read <= listBodyLimit
}

// countingBody counts the bytes read from a request body.
type countingBody struct {
	io.ReadCloser
	n int64
	// check checks the body once validated (allocated with the rest).
	check bodyChecker
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

// ValidateRequest returns the step that checks the request's path, query
// and header parameters and its JSON body against the operation of the
// API's OpenAPI document. A request that breaks it gets 400 with an
// errors member listing each violation, and is not forwarded. The body is
// read into memory (bounded by the body limit, which runs earlier) and
// forwarded from there.
func ValidateRequest(o ValidateOptions) Step {
	o.Routes = slices.Clone(o.Routes)
	for i := range o.Routes {
		o.Routes[i].single, o.Routes[i].query = routeParams(o.Routes[i].Route)
	}
	return func(next Handler) Handler {
		return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			route := o.route(r.Method)
			if route == nil {
				return next.ServeHTTP(w, r)
			}
			in := &openapi3filter.RequestValidationInput{Request: r, Route: route.Route, Options: validateOptions}
			if len(route.ParamNames) > 0 {
				in.PathParams = make(map[string]string, len(route.ParamNames))
				if x := ExchangeFrom(r.Context()); x != nil {
					for i, name := range route.ParamNames {
						if i < len(x.Params.Values) {
							in.PathParams[name] = x.Params.Values[i]
						}
					}
				}
			}
			// kin-openapi validates the first of several values of a
			// parameter that takes one, and ignores the others; it does
			// not see a query name that differs in case from a declared
			// one, nor a pair of the query that holds a ";" or an invalid
			// percent-encoding (Go's query parser drops it).
			var vs []Violation
			if raw := r.URL.RawQuery; strings.IndexByte(raw, ';') >= 0 || strings.IndexByte(raw, '%') >= 0 {
				vs = droppedPairs(vs, raw)
			}
			var cookies []string
			if len(route.single) > 0 || len(route.query) > 0 {
				vs, cookies = route.repeated(vs, in)
			}
			noBody := route.skipBody(r.Header.Get("Content-Type"))
			if noBody {
				in.Options = validateOptionsNoBody
			}
			// Count what validation reads of a body it checks (it puts
			// the body back in r.Body as a buffer of its own).
			var body *countingBody
			if !noBody && r.Body != nil && r.Body != http.NoBody {
				body = &countingBody{ReadCloser: r.Body}
				r.Body = body
			}
			err := openapi3filter.ValidateRequest(r.Context(), in)
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					e := TooLarge(mbe.Limit)
					e.Cause = err
					return e
				}
			}
			listed := false
			if err != nil && (body == nil || smallBody(body.n, r.ContentLength)) {
				// Again, listing every violation: the body (if any) is
				// small, and validation put it back in r.Body.
				in.Options = validateOptionsList
				if noBody {
					in.Options = validateOptionsListNoBody
				}
				if lerr := openapi3filter.ValidateRequest(r.Context(), in); lerr != nil {
					err = lerr
				}
				listed = true
			}
			// A JSON body that validation read whole: what its decoder
			// lets through (data after the value, duplicate names).
			var bodyV Violation
			badBody := false
			if body != nil && (err == nil || listed) && route.decodesJSON(r.Header.Get("Content-Type")) {
				var cerr error
				if bodyV, badBody, cerr = checkValidatedBody(r, &body.check); cerr != nil {
					return cerr
				}
			}
			if err == nil && len(vs) == 0 && !badBody {
				observe(o.Observe, "allowed")
				return next.ServeHTTP(w, r)
			}
			observe(o.Observe, "denied")
			if err != nil {
				n := len(vs)
				vs = violations(vs, err)
				if len(cookies) > 0 {
					firstValues(vs[n:], cookies)
				}
			}
			if badBody && !slices.Contains(vs, bodyV) {
				vs = append(vs, bodyV)
			}
			if len(vs) > MaxViolations {
				vs = vs[:MaxViolations]
			}
			return &Error{Status: http.StatusBadRequest, Type: "request-invalid", Title: "Request does not match the API description",
				Detail: "The request breaks the API's OpenAPI description; see errors.", Reason: "request_invalid",
				Extensions: map[string]any{"errors": vs}}
		})
	}
}

func (o *ValidateOptions) route(method string) *OpenAPIRoute {
	for i := range o.Routes {
		if o.Routes[i].Method == method {
			return &o.Routes[i]
		}
	}
	if method == http.MethodHead {
		return o.route(http.MethodGet)
	}
	return nil
}

// singleParam is a query, header or cookie parameter that takes one value.
type singleParam struct {
	in   string
	name string // canonical, for a header
	p    *openapi3.Parameter
}

// queryParam is a query parameter of an operation.
type queryParam struct {
	p *openapi3.Parameter
	// fold is set when a query name that differs from the parameter's
	// only in case is checked as the parameter: its values are those of
	// its name, and validated (not an object whose members are query
	// parameters of their own, not a parameter without a schema).
	fold bool
	// single is set when the parameter takes one value.
	single bool
}

// routeParams lists the parameters of route that take one value, and its
// query parameters.
func routeParams(route *routers.Route) (single []singleParam, query []queryParam) {
	if route == nil || route.Operation == nil {
		return nil, nil
	}
	add := func(p *openapi3.Parameter) {
		if p == nil {
			return
		}
		one := takesOne(p)
		if one {
			name := p.Name
			if p.In == openapi3.ParameterInHeader {
				name = http.CanonicalHeaderKey(name)
			}
			single = append(single, singleParam{in: p.In, name: name, p: p})
		}
		if p.In == openapi3.ParameterInQuery {
			query = append(query, queryParam{p: p, fold: foldsQuery(p), single: one})
		}
	}
	ops := route.Operation.Parameters
	if route.PathItem != nil {
		for _, ref := range route.PathItem.Parameters {
			if p := ref.Value; p != nil && ops.GetByInAndName(p.In, p.Name) == nil {
				add(p)
			}
		}
	}
	for _, ref := range ops {
		add(ref.Value)
	}
	return single, query
}

// takesOne reports whether p, a query, header or cookie parameter, takes
// one value: of the several values a request may give such a parameter,
// kin-openapi validates only the first. A parameter takes several values
// when its schema allows an array and each value is an item (query
// parameters exploded, the default for style form; header parameters,
// whose lines kin-openapi joins), when it has no schema or one that
// constrains no value (not validated), when it is an object whose members
// are query parameters of their own (style form exploded, deepObject), or
// when it is a query or header parameter described by content
// (kin-openapi decodes several query values as an array and refuses
// several header values; of a cookie it reads the first).
func takesOne(p *openapi3.Parameter) bool {
	if p.Content != nil {
		return p.In == openapi3.ParameterInCookie
	}
	if p.Schema == nil || p.Schema.Value == nil {
		return false
	}
	sm, err := p.SerializationMethod()
	if err != nil {
		return false
	}
	s := p.Schema.Value
	switch p.In {
	case openapi3.ParameterInQuery:
		return !membersAreParams(s, sm) && !(sm.Explode && takesArray(s, 0))
	case openapi3.ParameterInHeader:
		return !takesArray(s, 0)
	case openapi3.ParameterInCookie:
		return !(takesArray(s, 0) && sm.Explode)
	}
	return false
}

// foldsQuery reports whether a query parameter's values are those of its
// name, validated: it has a schema or content, and is not an object whose
// members are query parameters of their own.
func foldsQuery(p *openapi3.Parameter) bool {
	if p.Content != nil {
		return true
	}
	if p.Schema == nil || p.Schema.Value == nil {
		return false
	}
	sm, err := p.SerializationMethod()
	if err != nil {
		return false
	}
	return !membersAreParams(p.Schema.Value, sm)
}

// membersAreParams reports whether a query parameter is an object whose
// members are query parameters of their own (style form exploded,
// deepObject).
func membersAreParams(s *openapi3.Schema, sm *openapi3.SerializationMethod) bool {
	return s.Type.Includes(openapi3.TypeObject) && (sm.Explode && sm.Style == openapi3.SerializationForm || sm.Style == openapi3.SerializationDeepObject)
}

// takesArray reports whether a parameter schema may take several values:
// it allows an array, through one of its subschemas too, or constrains
// nothing that kin-openapi checks of a value given without a type.
func takesArray(s *openapi3.Schema, depth int) bool {
	if s == nil || depth > 32 {
		return true
	}
	if s.Type != nil && !s.Type.IsEmpty() {
		return s.Type.Includes(openapi3.TypeArray)
	}
	subs := len(s.AllOf) + len(s.AnyOf) + len(s.OneOf)
	if subs == 0 {
		return s.Pattern == "" && s.Const == nil && len(s.Enum) == 0
	}
	for _, refs := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for _, ref := range refs {
			if ref != nil && takesArray(ref.Value, depth+1) {
				return true
			}
		}
	}
	return false
}

// repeated appends a violation for each query or header parameter that
// takes one value and was given several, and checks the values that
// validation does not see: each value of a repeated cookie but its first,
// and the values of the query names that differ in case from a declared
// parameter's. It returns the names of the repeated cookies, whose first
// value validation checks. It parses the query into in.QueryParams, which
// validation then uses.
//
// A browser sends a cookie name more than once when it keeps cookies of
// that name for several paths or domains (RFC 6265, section 5.4), so a
// repeated cookie passes when each of its values is valid. A backend that
// reads query names without regard to case (ASP.NET Core's model binding,
// among others) takes Limit for limit, so Limit's values are checked
// against limit's schema, and count as limit's values.
func (r *OpenAPIRoute) repeated(vs []Violation, in *openapi3filter.RequestValidationInput) ([]Violation, []string) {
	req := in.Request
	var q url.Values
	var folds []queryFold
	if len(r.query) > 0 {
		q = in.GetQueryParams()
		folds = r.folds(q)
	}
	c := valueChecker{route: r, req: req, left: maxValueChecks}
	var cookies []string
	for _, p := range r.single {
		var n int
		folded := false
		switch p.in {
		case openapi3.ParameterInQuery:
			n = len(q[p.name])
			for _, f := range folds {
				if f.p.p == p.p {
					n += len(q[f.name])
					folded = true
				}
			}
		case openapi3.ParameterInHeader:
			n = len(req.Header[p.name])
		case openapi3.ParameterInCookie:
			if cs := req.CookiesNamed(p.name); len(cs) > 1 {
				cookies = append(cookies, p.name)
				for i, ck := range cs[1:] {
					vs = c.cookie(vs, p.p, i+2, ck.Value)
				}
			}
			continue
		}
		if n > 1 {
			msg := "given " + strconv.Itoa(n) + " times; the parameter takes one value"
			if folded {
				msg = "given " + strconv.Itoa(n) + " times (as " + spellings(q, p.p, folds) + "); the parameter takes one value"
			}
			vs = append(vs, Violation{In: p.in, Field: p.name, Message: msg})
		}
	}
	if len(folds) > 0 {
		vs = c.folded(vs, q, folds)
	}
	return vs, cookies
}

// maxValueChecks bounds the checks of values that validation does not see
// in a request (each value of a repeated cookie but its first; the values
// of each query name that differs in case from a declared parameter's,
// and of all its names together): each is a validation of its own, which
// compiles an OpenAPI 3.1 schema again (some 60 µs), and a request of 64
// KB may repeat a cookie 3,000 times. A browser repeats a cookie once for
// each path or domain it keeps it for, a few times.
const maxValueChecks = 16

// valueChecker validates the values that validation does not see, each in
// a request of its own, at most maxValueChecks of them.
type valueChecker struct {
	route *OpenAPIRoute
	req   *http.Request
	left  int
	// spent is set once a violation said that values were left
	// unchecked.
	spent bool
}

// check validates p's values in a request of its own: req, whose Cookie
// header holds one value of a cookie, or the query values q. Running
// kin-openapi's validation of the parameter on them decodes them as it
// decodes the value it checks (style, explode, content, the schema's
// type), and words its violations alike; the decoding is not exported to
// validate a value against the schema directly. The violations found are
// named field (the parameter's name as the client spelled it), their
// messages prefixed with prefix.
func (c *valueChecker) check(vs []Violation, p *openapi3.Parameter, field, prefix string, req *http.Request, q url.Values) []Violation {
	if c.left == 0 {
		if !c.spent {
			c.spent = true
			vs = append(vs, Violation{In: p.In, Field: field, Message: "not checked: the request gives more than " +
				strconv.Itoa(maxValueChecks) + " values that are checked one by one (a repeated cookie's, those of query names that differ in case from a declared one)"})
		}
		return vs
	}
	c.left--
	in := &openapi3filter.RequestValidationInput{Request: req, QueryParams: q, Route: c.route.Route, Options: validateOptionsListNoBody}
	err := openapi3filter.ValidateParameter(c.req.Context(), in, p)
	if err == nil {
		return vs
	}
	n := len(vs)
	vs = violations(vs, err)
	for i := n; i < len(vs); i++ {
		if rest, ok := strings.CutPrefix(vs[i].Field, p.Name); ok {
			vs[i].Field = field + rest
		}
		vs[i].Message = prefix + vs[i].Message
	}
	return vs
}

// cookie validates the i-th value of cookie p (from 1).
func (c *valueChecker) cookie(vs []Violation, p *openapi3.Parameter, i int, value string) []Violation {
	// The value was parsed from the request's Cookie header: it holds
	// no '"', ';' or '\', and quoted it reads back the same.
	req := &http.Request{Method: c.req.Method, URL: c.req.URL, Header: http.Header{"Cookie": {p.Name + `="` + value + `"`}}}
	return c.check(vs, p, p.Name, "the "+ordinal(i)+" value: ", req, nil)
}

// folded validates the values of the query names in folds, each as the
// parameter it folds to: each value on its own for a parameter that takes
// one, else the values of each name together, then, when those are valid
// and the parameter is given under more than one name, the values of all
// its names together (what a backend that merges them sees).
func (c *valueChecker) folded(vs []Violation, q url.Values, folds []queryFold) []Violation {
	var merge, bad []*queryParam
	for _, f := range folds {
		p := f.p.p
		values := q[f.name]
		if f.p.single {
			for i, v := range values {
				prefix := ""
				if len(values) > 1 {
					prefix = "the " + ordinal(i+1) + " value: "
				}
				vs = c.check(vs, p, f.name, prefix, c.req, url.Values{p.Name: {v}})
			}
			continue
		}
		n := len(vs)
		vs = c.check(vs, p, f.name, "", c.req, url.Values{p.Name: values})
		if len(vs) > n {
			bad = append(bad, f.p)
		} else if !slices.Contains(merge, f.p) {
			merge = append(merge, f.p)
		}
	}
	for _, qp := range merge {
		if slices.Contains(bad, qp) {
			continue
		}
		p := qp.p
		values := slices.Clone(q[p.Name])
		names := 0
		if len(values) > 0 {
			names++
		}
		for _, f := range folds {
			if f.p == qp {
				values = append(values, q[f.name]...)
				names++
			}
		}
		if names < 2 {
			continue
		}
		// The values of the declared name alone are validation's to
		// list (it refuses the request when they are invalid); together
		// they would be listed twice.
		if own := q[p.Name]; len(own) > 0 && c.left > 0 {
			n := len(vs)
			if vs = c.check(vs, p, p.Name, "", c.req, url.Values{p.Name: own}); len(vs) > n {
				vs = vs[:n]
				continue
			}
		}
		vs = c.check(vs, p, p.Name, "the values of "+spellings(q, p, folds)+" together: ", c.req, url.Values{p.Name: values})
	}
	return vs
}

// queryFold is a query name that differs from the name of a declared
// query parameter, p, only in case, and matches no declared name. Case is
// folded as strings.EqualFold folds it (Unicode's simple folding): more
// than ASCII, so that the Kelvin sign, which Java's equalsIgnoreCase
// takes for a k, is folded too; a name folded more often is only checked
// more often.
type queryFold struct {
	name string
	p    *queryParam
}

// folds lists the query names of q that fold to a declared parameter's
// name, sorted by name. Two declared names that differ only in case are
// each their own parameter; a name that folds to both is checked as both.
func (r *OpenAPIRoute) folds(q url.Values) []queryFold {
	var fs []queryFold
	for name := range q {
		if r.declaresQuery(name) {
			continue
		}
		for i := range r.query {
			if qp := &r.query[i]; qp.fold && strings.EqualFold(name, qp.p.Name) {
				fs = append(fs, queryFold{name: name, p: qp})
			}
		}
	}
	if len(fs) > 1 {
		slices.SortStableFunc(fs, func(a, b queryFold) int { return strings.Compare(a.name, b.name) })
	}
	return fs
}

// declaresQuery reports whether name is the name of a query parameter of
// the operation.
func (r *OpenAPIRoute) declaresQuery(name string) bool {
	for i := range r.query {
		if r.query[i].p.Name == name {
			return true
		}
	}
	return false
}

// spellings lists the names under which q gives p: its own, then those
// that fold to it.
func spellings(q url.Values, p *openapi3.Parameter, folds []queryFold) string {
	var names []string
	if len(q[p.Name]) > 0 {
		names = append(names, p.Name)
	}
	for _, f := range folds {
		if f.p.p == p {
			names = append(names, f.name)
		}
	}
	return strings.Join(names, ", ")
}

// ordinal writes n (from 1) as an English ordinal: 1st, 2nd, 3rd, 4th,
// 11th, 21st.
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return strconv.Itoa(n) + suffix
}

// firstValues marks the violations of validation (vs) that are of a
// repeated cookie's as those of its first value, which is the one
// validation checks; repeated checked the others.
func firstValues(vs []Violation, cookies []string) {
	for i := range vs {
		v := &vs[i]
		if v.In != openapi3.ParameterInCookie {
			continue
		}
		for _, name := range cookies {
			if rest, ok := strings.CutPrefix(v.Field, name); ok && (rest == "" || rest[0] == '/') {
				v.Message = "the 1st value: " + v.Message
				break
			}
		}
	}
}

// droppedPairs appends a violation for each pair of the raw query (the
// parts between "&") that Go's query parser drops whole, without a word
// to kin-openapi (url.Values from URL.Query): one that holds a ";"
// ("invalid semicolon separator in query"), or whose name or value has a
// "%" not followed by two hex digits ("invalid URL escape"). Its
// parameters would not be validated, while a backend reads them: one
// that also splits the query at ";" (older Python, some servlet
// containers, Perl's CGI), one that keeps an invalid escape as it is
// (PHP, Node's querystring). The violation names the pair by the name
// before its first "=".
func droppedPairs(vs []Violation, raw string) []Violation {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		name, value, _ := strings.Cut(pair, "=")
		var msg string
		switch {
		case strings.IndexByte(pair, ';') >= 0:
			msg = `the pair holds ";", which does not separate parameters here ("&" does); ` +
				`a ";" in a name or a value must be sent percent-encoded as %3B`
		case strings.IndexByte(pair, '%') >= 0 && (!unescapes(name) || !unescapes(value)):
			msg = `the pair holds a "%" that is not followed by two hexadecimal digits; ` +
				`a "%" in a name or a value must be sent percent-encoded as %25`
		default:
			continue
		}
		if u, err := url.QueryUnescape(name); err == nil {
			name = u
		}
		vs = append(vs, Violation{In: "query", Field: name, Message: msg})
	}
	return vs
}

// unescapes reports whether s is a query name or value that Go's query
// parser decodes (every "%" starts an escape of two hexadecimal digits).
func unescapes(s string) bool {
	_, err := url.QueryUnescape(s)
	return err == nil
}

// decodesJSON reports whether validation decodes a body of this content
// type as JSON: a JSON media type that the document gives a schema.
func (r *OpenAPIRoute) decodesJSON(contentType string) bool {
	rb := r.Route.Operation.RequestBody
	if rb == nil || rb.Value == nil {
		return false
	}
	mt, _, _ := strings.Cut(contentType, ";")
	if !IsJSONMedia(strings.ToLower(strings.TrimSpace(mt))) {
		return false
	}
	c := rb.Value.Content.Get(contentType)
	return c != nil && c.Schema != nil
}

// checkValidatedBody runs checkJSONBody on the body that validation read.
// kin-openapi keeps it in memory behind r.GetBody, and its reader writes
// itself whole in one Write, which is checked in place.
func checkValidatedBody(r *http.Request, c *bodyChecker) (Violation, bool, error) {
	if r.GetBody == nil { // not kin-openapi's way, but r.Body is in memory
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return Violation{}, false, err
		}
		r.Body = io.NopCloser(bytes.NewReader(data))
		v, bad := checkJSONBody(data)
		return v, bad, nil
	}
	rc, err := r.GetBody()
	if err != nil {
		return Violation{}, false, err
	}
	defer rc.Close()
	*c = bodyChecker{size: r.ContentLength}
	if _, err := io.Copy(c, rc); err != nil {
		return Violation{}, false, err
	}
	if !c.checked {
		c.v, c.bad = checkJSONBody(c.buf)
	}
	return c.v, c.bad, nil
}

// bodyChecker runs checkJSONBody on what is written to it: in place when
// the body (of size bytes) comes in one Write, else from a copy.
type bodyChecker struct {
	size    int64
	buf     []byte
	checked bool
	v       Violation
	bad     bool
}

var errBodyLength = errors.New("the validated body is longer than its length")

func (c *bodyChecker) Write(p []byte) (int, error) {
	if c.checked {
		return 0, errBodyLength
	}
	if c.buf == nil && int64(len(p)) == c.size {
		c.v, c.bad = checkJSONBody(p)
		c.checked = true
		return len(p), nil
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// skipBody reports whether a body of this content type is one the
// document declares with a media type that is not JSON.
func (r *OpenAPIRoute) skipBody(contentType string) bool {
	if contentType == "" || len(r.OtherMedia) == 0 {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || IsJSONMedia(mt) {
		return false
	}
	for _, m := range r.OtherMedia {
		if m == mt {
			return true
		}
	}
	return false
}

// IsJSONMedia reports whether a media type is JSON (application/json or
// any +json type).
func IsJSONMedia(mt string) bool {
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// violations flattens the errors of kin-openapi's validator.
func violations(vs []Violation, err error) []Violation {
	if me, ok := err.(openapi3.MultiError); ok {
		for _, e := range me {
			vs = violations(vs, e)
		}
		return vs
	}
	var re *openapi3filter.RequestError
	if !errors.As(err, &re) {
		return append(vs, Violation{In: "request", Message: "The request does not match the API description."})
	}
	in, field := "body", ""
	if p := re.Parameter; p != nil {
		in, field = p.In, p.Name
	}
	before := len(vs)
	if re.Err != nil {
		vs = schemaViolations(vs, re.Err, in, field)
	}
	if len(vs) == before {
		msg := re.Reason
		if msg == "" && re.Err != nil {
			msg = re.Err.Error()
		}
		if in == "body" && strings.HasPrefix(msg, "header Content-Type") {
			in, field = "header", "Content-Type"
		}
		vs = append(vs, Violation{In: in, Field: field, Message: firstLine(msg)})
	}
	return vs
}

// schemaViolations appends one violation per leaf schema error in err.
func schemaViolations(vs []Violation, err error, in, field string) []Violation {
	var me openapi3.MultiError
	if errors.As(err, &me) {
		for _, e := range me {
			vs = schemaViolations(vs, e, in, field)
		}
		return vs
	}
	var se *openapi3.SchemaError
	if !errors.As(err, &se) {
		return vs
	}
	if se.Origin != nil {
		var sub openapi3.MultiError
		if errors.As(se.Origin, &sub) {
			n := len(vs)
			for _, e := range sub {
				vs = schemaViolations(vs, e, in, field)
			}
			if len(vs) > n {
				return vs
			}
		}
	}
	f := field
	if in == "body" {
		f = jsonPointer(se.JSONPointer())
	} else if ptr := se.JSONPointer(); len(ptr) > 0 {
		f = field + jsonPointer(ptr)
	}
	msg := se.Reason
	if n, ok := se.Value.(json.Number); ok {
		if _, err := n.Float64(); errors.Is(err, strconv.ErrRange) { // 3.0: "cannot convert json.Number to float64"
			msg = numberText([]byte(n)) + " is out of the range of a number"
		}
	}
	if rest, ok := strings.CutPrefix(msg, `error at "`); ok { // JSON Schema 2020-12 messages name the path twice
		if i := strings.Index(rest, `": `); i >= 0 {
			msg = rest[i+3:]
		}
	}
	if msg == "" {
		msg = "does not match the schema (" + se.SchemaField + ")"
	}
	return append(vs, Violation{In: in, Field: f, Message: firstLine(msg)})
}

func jsonPointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(pointerEscaper.Replace(t))
	}
	return b.String()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
