package lint

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/gateway"
)

// Severity says how much a finding matters.
type Severity string

// Severities, from the most serious.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// Finding codes. They are stable: scripts and CI filters may rely on them.
const (
	CodeUnauthenticatedRoute   = "unauthenticated-route"
	CodeShadowedOperation      = "shadowed-operation"
	CodeShadowedAPI            = "shadowed-api"
	CodeBackendRequiresAuth    = "backend-requires-auth"
	CodeScopeNotEnforced       = "scope-not-enforced"
	CodeSchemeNotAccepted      = "scheme-not-accepted"
	CodeOperationNotRouted     = "operation-not-routed"
	CodeOperationNotDocumented = "operation-not-documented"
	CodeOpenAPIUnreadable      = "openapi-unreadable"
	CodeSettingWithoutEffect   = "setting-without-effect"
)

// Finding is one thing lint reports, placed like a validation diagnostic:
// the file, the line and column, and the dotted path of the key.
type Finding struct {
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Col      int      `json:"col"`
	Path     string   `json:"path"`
	Message  string   `json:"message"`
}

// String formats f as file:line:col: severity: code: path: message.
func (f Finding) String() string {
	var b strings.Builder
	if f.File != "" {
		b.WriteString(f.File)
		b.WriteByte(':')
	}
	if f.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", f.Line, f.Col)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "%s: %s: ", f.Severity, f.Code)
	if f.Path != "" {
		b.WriteString(f.Path)
		b.WriteString(": ")
	}
	b.WriteString(f.Message)
	return b.String()
}

// Sort orders findings by file and position, then by code and message, so
// that output is the same from one run to the next.
func Sort(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		return a.Message < b.Message
	})
}

// Run checks doc, which snap was compiled from, and returns its findings
// sorted by position. See the package documentation for the rules.
func Run(ctx context.Context, doc *config.Document, snap *gateway.Snapshot) []Finding {
	l := newLinter(doc, snap)
	l.unauthenticated()
	l.withoutEffect()
	l.shadowing()
	l.openAPI(ctx)
	Sort(l.findings)
	return l.findings
}

type linter struct {
	doc  *config.Document
	cfg  *config.Config
	snap *gateway.Snapshot
	// ops maps a compiled operation's ConfigPath to where it is
	// configured (op is -1 for an API without operations).
	ops      map[string]opRef
	findings []Finding
	// placeholder is a host that no API names, for APIs without hosts.
	placeholder string
}

// opRef locates a configured operation: APIs[api].Operations[op].
type opRef struct {
	api, op int
}

func newLinter(doc *config.Document, snap *gateway.Snapshot) *linter {
	l := &linter{doc: doc, cfg: doc.Config, snap: snap, ops: map[string]opRef{}}
	for i := range l.cfg.APIs {
		p := config.Index("apis", i)
		l.ops[p] = opRef{i, -1}
		for j := range l.cfg.APIs[i].Operations {
			l.ops[config.Index(config.Field(p, "operations"), j)] = opRef{i, j}
		}
	}
	l.placeholder = l.freeHost()
	return l
}

func (l *linter) add(sev Severity, code, path, format string, args ...any) {
	pos := l.doc.Pos(path)
	l.findings = append(l.findings, Finding{
		Severity: sev,
		Code:     code,
		File:     l.doc.File,
		Line:     pos.Line,
		Col:      pos.Col,
		Path:     path,
		Message:  fmt.Sprintf(format, args...),
	})
}

// where describes a compiled operation for a message: its config path,
// API, methods, template and line.
func (l *linter) where(op *gateway.Operation) string {
	if op.ConfigPath == "" {
		return fmt.Sprintf("the CORS preflight (OPTIONS %s) that the gateway answers for API %q", op.Template, op.API.Name)
	}
	line := ""
	if p := l.doc.Pos(op.ConfigPath); p.Line > 0 {
		line = fmt.Sprintf(", line %d", p.Line)
	}
	if ref := l.ops[op.ConfigPath]; ref.op < 0 {
		return fmt.Sprintf("%s (API %q, every path under %s%s)", op.ConfigPath, op.API.Name, prefixOf(&l.cfg.APIs[ref.api]), line)
	}
	return fmt.Sprintf("%s (API %q, %s %s%s)", op.ConfigPath, op.API.Name, strings.Join(op.Methods, ","), op.Template, line)
}

// authPath is the config path where the effective auth of an operation
// is written: the operation's own auth, else its API's.
func (l *linter) authPath(ref opRef) string {
	p := config.Index("apis", ref.api)
	if ref.op < 0 {
		return config.Field(p, "auth")
	}
	op := config.Index(config.Field(p, "operations"), ref.op)
	if l.cfg.APIs[ref.api].Operations[ref.op].Auth != nil {
		return config.Field(op, "auth")
	}
	return op
}

func prefixOf(a *config.API) string {
	return config.NormalizePrefix(a.PathPrefix)
}

// joinPath joins a normalized prefix and an operation path as the
// gateway does.
func joinPath(prefix, p string) string {
	if prefix == "/" {
		return p
	}
	if p == "/" || p == "" {
		return prefix
	}
	return prefix + p
}

// unauthenticated reports every route whose effective auth is anonymous.
func (l *linter) unauthenticated() {
	for i := range l.cfg.APIs {
		a := &l.cfg.APIs[i]
		p := config.Index("apis", i)
		if len(a.Operations) == 0 {
			if a.Auth != nil && a.Auth.Anonymous {
				l.add(Warning, CodeUnauthenticatedRoute, config.Field(p, "auth"),
					"every method and path under %s%s is served without authentication; if API %q is meant to be public keep auth: {anonymous: true}, otherwise set credentials (and require)",
					prefixOf(a), onHosts(a), a.Name)
			}
			continue
		}
		for j := range a.Operations {
			o := &a.Operations[j]
			auth := config.EffectiveAuth(a, o)
			if auth == nil || !auth.Anonymous {
				continue
			}
			route := fmt.Sprintf("%s %s%s", strings.Join(o.OperationMethods(), ","), joinPath(prefixOf(a), o.Path), onHosts(a))
			opp := config.Index(config.Field(p, "operations"), j)
			if o.Auth != nil {
				l.add(Warning, CodeUnauthenticatedRoute, config.Field(opp, "auth"),
					"%s is served without authentication; if it is meant to be public keep auth: {anonymous: true}, otherwise set credentials (and require)", route)
			} else {
				l.add(Warning, CodeUnauthenticatedRoute, opp,
					"%s is served without authentication (it inherits auth: {anonymous: true} from %s); if it is meant to be public keep it, otherwise give the operation or the API credentials",
					route, config.Field(p, "auth"))
			}
		}
	}
}

// withoutEffect reports settings that the rest of the configuration makes
// idle: a rate limit's on_redis_failure without storage.redis (its limits
// are in memory and never fail).
func (l *linter) withoutEffect() {
	if l.cfg.Storage.Redis != nil {
		return
	}
	check := func(p string, limits []config.RateLimit) {
		for i, rl := range limits {
			if rl.OnRedisFailure != "" {
				l.add(Warning, CodeSettingWithoutEffect, config.Field(config.Index(p, i), "on_redis_failure"),
					"rate limit %q has on_redis_failure: %s, but without storage.redis its buckets are in this gateway's memory, which never fails: the setting does nothing",
					rl.Name, rl.OnRedisFailure)
			}
		}
	}
	for i := range l.cfg.APIs {
		a := &l.cfg.APIs[i]
		p := config.Index("apis", i)
		check(config.Field(p, "rate_limits"), a.RateLimits)
		for j := range a.Operations {
			check(config.Field(config.Index(config.Field(p, "operations"), j), "rate_limits"), a.Operations[j].RateLimits)
		}
	}
}

// onHosts is "" for an API on every host, else " on host" and its hosts,
// to put after a path in messages.
func onHosts(a *config.API) string {
	if len(a.Hosts) == 0 {
		return ""
	}
	return " on host " + strings.Join(a.Hosts, ", ")
}
