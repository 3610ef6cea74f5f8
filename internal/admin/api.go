package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/internal/anomaly"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/registry"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// DefaultMaxBody bounds an admin API request body.
const DefaultMaxBody = 64 << 10

// APIOptions are what the admin API works with.
type APIOptions struct {
	Logger *slog.Logger
	// Snapshot returns the snapshot being served: its admin access rules
	// authenticate callers, its configuration is what GET /v1/config shows.
	Snapshot func() *gateway.Snapshot
	Registry *registry.Registry
	Store    store.Store
	// Keys is refreshed after every change to consumers or keys, so that
	// the change applies to the next request.
	Keys interface {
		Refresh(ctx context.Context) error
	}
	Audit *audit.Recorder
	// Reload reloads the configuration from its source.
	Reload func(ctx context.Context, cause, actor string) error
	// Stats serves GET /v1/stats (see StatsHandler); nil answers 404.
	Stats http.Handler
	// Anomalies is the anomaly detector GET /v1/anomalies reads (nil:
	// an empty list).
	Anomalies *anomaly.Detector
	Now       func() time.Time
}

// API is the admin API handler (/v1).
type API struct {
	o       APIOptions
	mux     *http.ServeMux
	routes  []route
	docOnce sync.Once
	doc     []byte
}

// perm is what a route needs.
type perm int

const (
	permAuthenticated perm = iota // any role
	permRead                      // viewer or admin
	permRegister                  // registrar of the path's service, or admin
	permAdmin                     // admin
)

// route is one operation of the admin API; the table of routes is the
// one source of the mux and of the OpenAPI document.
type route struct {
	method  string
	path    string // OpenAPI form: /v1/services/{service}/instances
	perm    perm
	handle  func(*call) error
	summary string
	request string // schema name of the request body, if any
	reply   string // schema name of the 2xx body, if any
	status  int    // success status
}

// call is one admin request being served.
type call struct {
	api    *API
	w      http.ResponseWriter
	r      *http.Request
	ctx    context.Context
	snap   *gateway.Snapshot
	actor  string
	grants []gateway.AdminGrant
	route  *route
}

// NewAPI returns the admin API.
func NewAPI(o APIOptions) *API {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{o: o, mux: http.NewServeMux()}
	a.routes = a.table()
	for i := range a.routes {
		rt := &a.routes[i]
		a.mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) { a.serve(w, r, rt) })
	}
	a.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, &apiError{status: http.StatusNotFound, typ: "not-found", title: "Not found", detail: "No admin API operation has this method and path; see /v1/openapi.json."})
	})
	return a
}

func (a *API) table() []route {
	return []route{
		{method: "GET", path: "/v1/openapi.json", perm: permAuthenticated, handle: a.openAPI, summary: "This document.", status: 200},
		{method: "GET", path: "/v1/whoami", perm: permAuthenticated, handle: a.whoami, summary: "The caller's identity and admin roles.", reply: "Whoami", status: 200},

		{method: "GET", path: "/v1/services", perm: permRead, handle: a.listServices, summary: "Services with registered instances.", reply: "ServiceList", status: 200},
		{method: "GET", path: "/v1/services/{service}/instances", perm: permRead, handle: a.listInstances, summary: "The registered instances of a service.", reply: "InstanceList", status: 200},
		{method: "POST", path: "/v1/services/{service}/instances", perm: permRegister, handle: a.register, summary: "Register an instance (or renew the registration of the same address and port).", request: "Registration", reply: "Instance", status: 200},
		{method: "PUT", path: "/v1/services/{service}/instances/{id}/heartbeat", perm: permRegister, handle: a.heartbeat, summary: "Renew an instance for another TTL; 404 means it expired: register again.", reply: "Instance", status: 200},
		{method: "DELETE", path: "/v1/services/{service}/instances/{id}", perm: permRegister, handle: a.deregister, summary: "Deregister an instance; it gets no new requests, in-flight ones finish.", status: 204},

		{method: "GET", path: "/v1/consumers", perm: permRead, handle: a.listConsumers, summary: "Consumers kept in the store, with their key slots (never the keys).", reply: "ConsumerList", status: 200},
		{method: "POST", path: "/v1/consumers", perm: permAdmin, handle: a.createConsumer, summary: "Create a consumer and its keys; the keys are in this response only.", request: "NewConsumer", reply: "CreatedConsumer", status: 201},
		{method: "GET", path: "/v1/consumers/{name}", perm: permRead, handle: a.getConsumer, summary: "One consumer.", reply: "Consumer", status: 200},
		{method: "DELETE", path: "/v1/consumers/{name}", perm: permAdmin, handle: a.deleteConsumer, summary: "Delete a consumer and its keys.", status: 204},
		{method: "POST", path: "/v1/consumers/{name}/keys/{slot}", perm: permAdmin, handle: a.rotateKey, summary: "Generate a new key in a slot (primary or secondary), replacing the one there; the key is in this response only.", reply: "NewKey", status: 201},
		{method: "DELETE", path: "/v1/consumers/{name}/keys/{slot}", perm: permAdmin, handle: a.revokeKey, summary: "Revoke the key in a slot.", status: 204},

		{method: "GET", path: "/v1/audit", perm: permRead, handle: a.listAudit, summary: "Audit records after a sequence number (?after=N&limit=M).", reply: "AuditList", status: 200},
		{method: "GET", path: "/v1/audit/verify", perm: permRead, handle: a.verifyAudit, summary: "Check the audit log's hash chain.", reply: "AuditVerification", status: 200},

		{method: "GET", path: "/v1/anomalies", perm: permRead, handle: a.listAnomalies, summary: "Anomalies flagged since the gateway started, newest first (?kind=rate_spike|auth_failures|enumeration|first_access&limit=N), with counts per kind (docs/anomalies.md).", reply: "AnomalyList", status: 200},

		{method: "GET", path: "/v1/suggestions", perm: permRead, handle: a.suggestions, summary: "Timeouts and concurrency limits suggested from the last day's upstream latency, timeouts and busiest second, per operation and backend (?min_samples=N; docs/suggestions.md).", reply: "SuggestionList", status: 200},
		{method: "GET", path: "/v1/stats", perm: permRead, handle: a.stats, summary: "Latency statistics per API and operation (?window=1m|1h, &series=true for a point per second or minute).", reply: "Stats", status: 200},

		{method: "GET", path: "/v1/config", perm: permRead, handle: a.getConfig, summary: "The configuration being served; its ETag is the version.", reply: "Config", status: 200},
		{method: "GET", path: "/v1/config/revisions", perm: permRead, handle: a.listRevisions, summary: "Configurations loaded, newest first.", reply: "RevisionList", status: 200},
		{method: "POST", path: "/v1/config/reload", perm: permAdmin, handle: a.reload, summary: "Reload the configuration from its file. With If-Match, only if the version served is still that one (412 otherwise).", reply: "Config", status: 200},
	}
}

// AdminOnly serves h to callers with the admin role, authenticated like
// the API's own routes (for the profiling endpoints).
func (a *API) AdminOnly(h http.Handler) http.Handler {
	rt := &route{perm: permAdmin, handle: func(c *call) error {
		h.ServeHTTP(c.w, c.r)
		return nil
	}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.serve(w, r, rt) })
}

// ServeHTTP serves /v1.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *API) serve(w http.ResponseWriter, r *http.Request, rt *route) {
	w.Header().Set("Cache-Control", "no-store")
	c := &call{api: a, w: w, r: r, ctx: r.Context(), route: rt, snap: a.o.Snapshot()}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.o.Logger.Error("panic in the admin API", "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			writeProblem(w, internalError())
		}
	}()
	if c.snap == nil {
		writeProblem(w, &apiError{status: 503, typ: "unavailable", title: "Service unavailable", detail: "No configuration is loaded yet."})
		return
	}
	if e := crossSite(r); e != nil {
		writeProblem(w, e)
		return
	}
	if e := c.authenticate(); e != nil {
		writeProblem(w, e)
		return
	}
	if e := c.authorize(); e != nil {
		writeProblem(w, e)
		return
	}
	if err := rt.handle(c); err != nil {
		e := asAPIError(err)
		if e.status >= 500 {
			a.o.Logger.Error("admin API request failed", "method", r.Method, "path", r.URL.Path, "actor", c.actor, "error", err)
		}
		writeProblem(w, e)
	}
}

// authenticate establishes the caller: a bearer admin API key or JWT, or,
// with insecure_local, any loopback caller without credentials.
func (c *call) authenticate() *apiError {
	acc := c.snap.Admin()
	if acc == nil {
		return unauthorized("The admin API is not configured.")
	}
	if acc.ClientCertRequired && (c.r.TLS == nil || len(c.r.TLS.VerifiedChains) == 0) {
		return unauthorized("A client certificate signed by server.admin.tls.client_ca_file is required.")
	}
	values := c.r.Header.Values("Authorization")
	if len(values) == 0 {
		// Loopback by its peer and by the name it was asked under: a page
		// of another site whose name was rebound to 127.0.0.1 comes from
		// loopback too, but under its own name.
		if acc.InsecureLocal && config.IsLoopbackHostPort(c.r.RemoteAddr) && config.IsLoopbackHostPort(c.r.Host) {
			c.actor = "local"
			c.grants = []gateway.AdminGrant{{Role: config.AdminRoleAdmin}}
			return nil
		}
		return unauthorized("Credentials are required: 'Authorization: Bearer' with an admin API key or a JWT.")
	}
	if len(values) > 1 {
		return unauthorized("More than one Authorization header.")
	}
	scheme, cred, _ := strings.Cut(values[0], " ")
	cred = strings.TrimSpace(cred)
	if !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return unauthorized("The Authorization header must be 'Bearer <admin key or token>'.")
	}
	if strings.HasPrefix(cred, identity.APIKeyPrefix) {
		name, grant, ok := acc.LookupKey(cred)
		if !ok {
			return unauthorized("The admin API key is not valid.")
		}
		c.actor, c.grants = "key:"+name, []gateway.AdminGrant{grant}
		return nil
	}
	if acc.Tokens == nil {
		return unauthorized("The admin API accepts no JWTs (server.admin.auth.jwt is not set).")
	}
	p, err := acc.Tokens.Verify(c.ctx, cred)
	if err != nil {
		detail := "The token is not valid."
		var ie *identity.Error
		if errors.As(err, &ie) {
			detail = ie.Detail
		}
		return unauthorized(detail)
	}
	if !acc.AcceptsIssuer(p.Provider) {
		return unauthorized("Tokens from this issuer are not accepted by the admin API.")
	}
	if !acc.AcceptsAudience(p) {
		return unauthorized("The token is not meant for the admin API (its aud is none of server.admin.auth.jwt.audiences).")
	}
	c.actor = "jwt:" + p.Provider + ":" + p.Subject
	c.grants = acc.Grants(p)
	return nil
}

// crossSite refuses a request a browser made for a page of another
// origin: the admin API is for programs (which send no Origin) and the
// dashboard's own pages. Without this, a page anywhere could send a form
// to a loopback listener under insecure_local, or to one that takes a
// client certificate the browser offers on its own.
func crossSite(r *http.Request) *apiError {
	if !fromOtherOrigin(r) {
		return nil
	}
	return &apiError{status: http.StatusForbidden, typ: "cross-site", title: "Forbidden",
		detail: "Requests from a page of another origin are refused: the admin API is for programs, which send no Origin."}
}

// fromOtherOrigin reports whether a browser made r for a page of another
// origin than the admin listener's.
func fromOtherOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host)
	}
	return false
}

// authorize checks the route's permission against the caller's grants;
// a refusal is audited.
func (c *call) authorize() *apiError {
	service := c.r.PathValue("service")
	if allowed(c.grants, c.route.perm, service) {
		return nil
	}
	// The path and service name are the caller's: clipped, so that denied
	// calls cannot grow the audit log by kilobytes each.
	path := clip(c.r.URL.Path, 256)
	detail := fmt.Sprintf("%s may not %s %s", describeGrants(c.grants), c.r.Method, path)
	if c.route.perm == permRegister {
		detail = fmt.Sprintf("%s may not register, heartbeat or deregister instances of service %q", describeGrants(c.grants), clip(service, 128))
	}
	c.api.o.Audit.Record(c.ctx, audit.Entry{Actor: c.actor, Action: audit.ActionAdminDenied,
		Target: c.r.Method + " " + path, Outcome: store.OutcomeDenied, Detail: detail})
	return &apiError{status: http.StatusForbidden, typ: "forbidden", title: "Forbidden", detail: detail}
}

// allowed is the admin authorization rule.
func allowed(grants []gateway.AdminGrant, p perm, service string) bool {
	for _, g := range grants {
		switch {
		case g.Role == config.AdminRoleAdmin:
			return true
		case p == permAuthenticated:
			return true
		case p == permRead && g.Role == config.AdminRoleViewer:
			return true
		case p == permRegister && g.Role == config.AdminRoleRegistrar && service != "" &&
			(slices.Contains(g.Services, service) || slices.Contains(g.Services, "*")):
			return true
		}
	}
	return false
}

func describeGrants(gs []gateway.AdminGrant) string {
	if len(gs) == 0 {
		return "a caller with no admin role"
	}
	var parts []string
	for _, g := range gs {
		s := "role " + g.Role
		if len(g.Services) > 0 {
			s += " for [" + strings.Join(g.Services, ", ") + "]"
		}
		parts = append(parts, s)
	}
	return "a caller with " + strings.Join(parts, " and ")
}

// apiError is an admin API failure, rendered as RFC 9457 problem details.
type apiError struct {
	status int
	typ    string
	title  string
	detail string
	header http.Header
	cause  error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return e.detail + ": " + e.cause.Error()
	}
	return e.detail
}

func unauthorized(detail string) *apiError {
	return &apiError{status: http.StatusUnauthorized, typ: "unauthorized", title: "Unauthorized", detail: detail,
		header: http.Header{"WWW-Authenticate": {`Bearer realm="gatehouse-admin"`}}}
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "bad-request", title: "Bad request", detail: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, typ: "not-found", title: "Not found", detail: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) *apiError {
	return &apiError{status: http.StatusConflict, typ: "conflict", title: "Conflict", detail: fmt.Sprintf(format, args...)}
}

func internalError() *apiError {
	return &apiError{status: http.StatusInternalServerError, typ: "internal", title: "Internal error", detail: "The admin API failed to handle the request."}
}

func asAPIError(err error) *apiError {
	var e *apiError
	if errors.As(err, &e) {
		return e
	}
	var re *registry.Error
	if errors.As(err, &re) {
		switch re.Kind {
		case registry.NotAllowed:
			return &apiError{status: http.StatusForbidden, typ: "address-not-allowed", title: "Address not allowed", detail: re.Msg}
		case registry.NotFound:
			return notFound("%s", re.Msg)
		case registry.Full:
			return conflict("%s", re.Msg)
		default:
			return &apiError{status: http.StatusUnprocessableEntity, typ: "invalid-registration", title: "Invalid registration", detail: re.Msg}
		}
	}
	e = internalError()
	e.cause = err
	return e
}

// problemBase prefixes the type URI of admin API problems.
const problemBase = gateway.ProblemTypeBase + "admin/"

func writeProblem(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	for k, vs := range e.header {
		h[k] = vs
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": problemBase + e.typ, "title": e.title, "status": e.status, "detail": e.detail,
	})
}

func (c *call) reply(v any) error {
	writeJSON(c.w, c.route.status, v)
	return nil
}

// decode reads a JSON request body into v: application/json, at most
// DefaultMaxBody bytes, one object, no unknown fields.
func (c *call) decode(v any) error {
	ct := c.r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return &apiError{status: http.StatusUnsupportedMediaType, typ: "unsupported-media-type", title: "Unsupported media type", detail: "The request body must be application/json."}
	}
	dec := json.NewDecoder(http.MaxBytesReader(c.w, c.r.Body, DefaultMaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{status: http.StatusRequestEntityTooLarge, typ: "body-too-large", title: "Request body too large", detail: fmt.Sprintf("The request body is larger than %d bytes.", DefaultMaxBody)}
		}
		return badRequest("The request body is not valid JSON for this operation: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("The request body has data after its JSON object.")
	}
	return nil
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is empty or cut short"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "malformed"
}

// clip shortens s to at most n bytes (on a UTF-8 boundary), marking the
// cut with "...".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n - 3
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
