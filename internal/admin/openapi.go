package admin

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
)

// openAPI serves the OpenAPI 3.1 document of the admin API, built from
// the same route table as the mux, so no route can be missing from it.
func (a *API) openAPI(c *call) error {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	_, err := c.w.Write(a.document())
	return err
}

func (a *API) document() []byte {
	a.docOnce.Do(func() {
		b, err := json.MarshalIndent(openAPIDocument(a.routes), "", "  ")
		if err != nil {
			panic(err)
		}
		a.doc = b
	})
	return a.doc
}

var pathParamRE = regexp.MustCompile(`\{([a-z]+)\}`)

var permText = map[perm]string{
	permAuthenticated: "Any admin role.",
	permRead:          "Roles: viewer, admin.",
	permRegister:      "Roles: registrar of this service, admin.",
	permAdmin:         "Role: admin.",
}

// openAPIDocument describes routes as an OpenAPI 3.1 document.
func openAPIDocument(routes []route) map[string]any {
	paths := map[string]any{}
	for _, rt := range routes {
		item, _ := paths[rt.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.path] = item
		}
		var params []any
		for _, m := range pathParamRE.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if rt.path == "/v1/audit" {
			params = append(params,
				map[string]any{"name": "after", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 0}},
				map[string]any{"name": "limit", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1, "maximum": 1000}})
		}
		if rt.path == "/v1/config/reload" {
			params = append(params, map[string]any{"name": "If-Match", "in": "header", "description": "The ETag of GET /v1/config; 412 if another version is served.", "schema": map[string]any{"type": "string"}})
		}
		success := map[string]any{"description": "Success."}
		if rt.reply != "" {
			success["content"] = map[string]any{"application/json": map[string]any{"schema": ref(rt.reply)}}
		}
		if rt.path == "/v1/openapi.json" {
			success["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
		}
		responses := map[string]any{
			strconv.Itoa(rt.status): success,
			"401":                   problemResponse("No valid credentials."),
			"403":                   problemResponse("The caller's roles do not allow this."),
		}
		if rt.request != "" || rt.method != "GET" {
			responses["400"] = problemResponse("The request is malformed.")
		}
		if rt.method != "GET" || rt.path != "/v1/services" {
			responses["404"] = problemResponse("Not found.")
		}
		if rt.path == "/v1/services/{service}/instances" && rt.method == "POST" {
			responses["422"] = problemResponse("The registration is invalid.")
			responses["409"] = problemResponse("The service has too many instances, or the registry too many services (registry.max_services).")
		}
		if rt.path == "/v1/config/reload" {
			responses["412"] = problemResponse("The configuration served is not the version in If-Match.")
			responses["422"] = problemResponse("The configuration file was refused; the running one keeps serving.")
		}
		if rt.path == "/v1/consumers" && rt.method == "POST" {
			responses["409"] = problemResponse("The consumer exists (in the store or in the configuration file).")
		}
		op := map[string]any{
			"summary":     rt.summary,
			"description": permText[rt.perm],
			"operationId": operationID(rt),
			"responses":   responses,
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.request != "" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": ref(rt.request)}}}
		}
		item[lower(rt.method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "Gatehouse admin API",
			"version":     "1",
			"description": "Service registration, consumers and API keys, the audit log and the configuration of a Gatehouse gateway. Served on the admin listener only. Errors are application/problem+json (RFC 9457).",
		},
		"security": []any{map[string]any{"bearer": []any{}}},
		"paths":    paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "An admin API key (ghk_...) or a JWT from an identity provider listed in server.admin.auth.jwt.issuers."},
			},
			"schemas": schemas(),
		},
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

func operationID(rt route) string {
	id := lower(rt.method)
	for _, part := range regexp.MustCompile(`[a-z]+`).FindAllString(pathParamRE.ReplaceAllString(rt.path, ""), -1) {
		if part == "v" {
			continue
		}
		id += string(part[0]-32) + part[1:]
	}
	return id
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func problemResponse(desc string) map[string]any {
	return map[string]any{"description": desc, "content": map[string]any{"application/problem+json": map[string]any{"schema": ref("Problem")}}}
}

func obj(required []string, props map[string]any) map[string]any {
	o := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func str(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
func integer(desc string) map[string]any {
	return map[string]any{"type": "integer", "description": desc}
}
func strList(desc string) map[string]any {
	return map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": desc}
}
func list(item string) map[string]any   { return map[string]any{"type": "array", "items": ref(item)} }
func stamp() map[string]any             { return map[string]any{"type": "string", "format": "date-time"} }
func number(desc string) map[string]any { return map[string]any{"type": "number", "description": desc} }

func schemas() map[string]any {
	return map[string]any{
		"Problem": obj([]string{"type", "title", "status"}, map[string]any{
			"type": str("Problem type URI."), "title": str("Short summary."), "status": integer("HTTP status."), "detail": str("This occurrence."),
		}),
		"Grant": obj([]string{"role"}, map[string]any{
			"role": map[string]any{"type": "string", "enum": []string{"admin", "registrar", "viewer"}}, "services": strList("Services a registrar may register into ('*': all)."),
		}),
		"Whoami": obj([]string{"actor", "grants"}, map[string]any{"actor": str("How the caller appears in the audit log."), "grants": list("Grant")}),
		"Registration": obj([]string{"address", "port"}, map[string]any{
			"address":  str("IP address of the instance; host names are refused. Link-local, metadata and (by default) loopback addresses are refused; others must be in registry.allowed_cidrs."),
			"port":     map[string]any{"type": "integer", "minimum": 1, "maximum": 65535},
			"scheme":   map[string]any{"type": "string", "enum": []string{"http", "https"}, "default": "http"},
			"weight":   map[string]any{"type": "integer", "minimum": 1, "maximum": 1000, "default": 1},
			"zone":     str("Availability zone."),
			"metadata": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}, "maxProperties": 32},
			"ttl":      str("How long the registration lives without a heartbeat, e.g. 30s. Default registry.default_ttl."),
		}),
		"Instance": obj([]string{"service", "id", "address", "port"}, map[string]any{
			"service": str(""), "id": str("host:port; use it for heartbeats and deregistration."), "scheme": str(""),
			"address": str(""), "port": integer(""), "weight": integer(""), "zone": str(""),
			"metadata":   map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
			"ttl":        str(""),
			"registered": stamp(), "heartbeat": stamp(), "expires": stamp(), "registered_by": str(""),
		}),
		"InstanceList": obj([]string{"service", "instances"}, map[string]any{"service": str(""), "instances": list("Instance")}),
		"ServiceList": obj([]string{"services"}, map[string]any{"services": map[string]any{"type": "array", "items": obj(nil, map[string]any{
			"service": str(""), "instances": integer("Registered instances."),
		})}}),
		"NewConsumer": obj([]string{"name"}, map[string]any{
			"name": str("Unique name; not one of the configuration file's consumers."), "groups": strList(""), "roles": strList(""), "scopes": strList(""),
			"keys": map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": []string{"primary", "secondary"}}, "description": "Slots to make keys in. Default [primary]."},
		}),
		"KeySlot": obj([]string{"slot", "key_id"}, map[string]any{"slot": str(""), "key_id": str("First 12 hex digits of the key's SHA-256."), "created": stamp()}),
		"Consumer": obj([]string{"name", "keys"}, map[string]any{
			"name": str(""), "groups": strList(""), "roles": strList(""), "scopes": strList(""), "created": stamp(), "updated": stamp(), "keys": list("KeySlot"),
		}),
		"ConsumerList": obj([]string{"consumers"}, map[string]any{"consumers": list("Consumer")}),
		"CreatedConsumer": obj([]string{"consumer", "keys"}, map[string]any{
			"consumer": ref("Consumer"),
			"keys":     map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}, "description": "The new keys by slot. Shown once."},
			"note":     str(""),
		}),
		"NewKey": obj([]string{"consumer", "slot", "key", "key_id"}, map[string]any{
			"consumer": str(""), "slot": str(""), "key": str("The new key. Shown once."), "key_id": str(""), "note": str(""),
		}),
		"AuditRecord": obj([]string{"seq", "time", "actor", "action", "target", "outcome", "prev_hash", "hash"}, map[string]any{
			"seq": integer(""), "time": stamp(), "actor": str(""), "action": str(""), "target": str(""),
			"outcome": map[string]any{"type": "string", "enum": []string{"success", "failure", "denied"}},
			"detail":  str(""), "before": str("JSON of the state before."), "after": str("JSON of the state after."),
			"prev_hash": str(""), "hash": str("SHA-256 of the canonical encoding (docs/audit.md)."),
		}),
		"AuditList": obj([]string{"records"}, map[string]any{"records": list("AuditRecord")}),
		"AuditVerification": obj([]string{"ok", "records"}, map[string]any{
			"ok": map[string]any{"type": "boolean"}, "records": integer(""), "head_seq": integer(""), "head_hash": str(""),
			"first_bad_seq": integer("The first record altered or removed."), "problem": str(""),
		}),
		"Config": obj([]string{"version", "config"}, map[string]any{
			"version": str("Also the ETag."), "loaded": stamp(), "config": map[string]any{"type": "object", "description": "The configuration, with secret references (never values)."},
		}),
		"Stats": map[string]any{"type": "object", "description": "Requests per second, error rates and p50/p95/p99 latency per API and operation over the window (docs/observability.md)."},
		"AnomalyList": obj([]string{"enabled", "events", "counts"}, map[string]any{
			"enabled": map[string]any{"type": "boolean", "description": "Whether the configuration being served has anomalies.enabled."},
			"events":  list("Anomaly"),
			"counts":  map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "integer"}, "description": "Anomalies flagged since start, by kind."},
			"callers": integer("Callers followed now."),
			"dropped": integer("Events and first-access checks dropped because the detector's queue was full."),
		}),
		"Anomaly": obj([]string{"time", "kind", "caller", "count", "detail", "action"}, map[string]any{
			"time":      stamp(),
			"kind":      map[string]any{"type": "string", "enum": []string{"rate_spike", "auth_failures", "enumeration", "first_access"}},
			"caller":    str("jwt:PROVIDER:SUBJECT, key:CONSUMER, mtls:SUBJECT, or ip:ADDRESS when the caller has no verified identity."),
			"client_ip": str(""), "api": str(""), "operation": str(""),
			"count":     integer("What was counted in the window: requests, refusals or distinct paths."),
			"baseline":  map[string]any{"type": "number", "description": "For a rate spike, the caller's usual requests per window."},
			"window_ns": integer("The counting window, in nanoseconds."),
			"detail":    str(""),
			"action":    map[string]any{"type": "string", "enum": []string{"logged", "throttled"}},
			"until":     stamp(),
		}),
		"SuggestionList": obj([]string{"window", "min_samples", "suggestions"}, map[string]any{
			"window":      str("The span the statistics cover: 24h (the current hour and the 23 before it; less since the gateway started)."),
			"min_samples": integer("Upstream exchanges an operation needs before anything is proposed for it."),
			"suggestions": list("Suggestion"),
		}),
		"Suggestion": obj([]string{"kind", "action", "backend", "setting", "path", "current", "reason", "evidence"}, map[string]any{
			"kind":   map[string]any{"type": "string", "enum": []string{"timeout", "concurrency"}},
			"action": map[string]any{"type": "string", "enum": []string{"raise", "add", "lower", "keep", "wait"}},
			"api":    str(""), "operation": str(""), "backend": str(""),
			"setting": str("The setting, by names: apis[orders].operations[getOrder].timeouts.request."),
			"path":    str("Where the patch goes in the configuration (apis[0].operations[1])."),
			"line":    integer("Its line in the configuration file."),
			"current": str(""), "suggested": str(""), "reason": str(""),
			"patch": str("YAML to set at path."),
			"evidence": obj([]string{"requests", "answered", "timed_out", "peak_rps"}, map[string]any{
				"requests": integer(""), "answered": integer("Requests whose backend answered."),
				"timed_out": integer("504 upstream_timeout."), "limited": integer("503 concurrency_limit."),
				"abandoned":        integer("Requests whose client went away (499) before the backend's response headers."),
				"abandoned_max_ms": number("The longest of those waits."),
				"peak_rps":         integer("Most requests in one second."),
				"p50_ms":           number("Time to the backend's response headers."), "p99_ms": number(""), "p999_ms": number(""), "max_ms": number(""),
				"in_flight": number("Estimated requests in flight to the backend at its busiest."),
				"since":     stamp(),
			}),
		}),
		"Revision":     obj([]string{"seq", "version"}, map[string]any{"seq": integer(""), "version": str(""), "time": stamp(), "source": str(""), "actor": str("")}),
		"RevisionList": obj([]string{"revisions"}, map[string]any{"revisions": list("Revision")}),
	}
}
