package policy

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// HeaderOpKind is what a header operation does.
type HeaderOpKind uint8

// Header operations.
const (
	HeaderRemove HeaderOpKind = iota + 1
	HeaderSet
	HeaderAppend
)

// HeaderOp is one header change. Name is canonical.
type HeaderOp struct {
	Kind  HeaderOpKind
	Name  string
	Value string
}

func applyHeaderOps(h http.Header, ops []HeaderOp) {
	for _, op := range ops {
		switch op.Kind {
		case HeaderRemove:
			delete(h, op.Name)
		case HeaderSet:
			h[op.Name] = []string{op.Value}
		case HeaderAppend:
			h[op.Name] = append(h[op.Name], op.Value)
		}
	}
}

// PathPart is one segment of a path rewrite: a literal, or the value of
// the matched path parameter at Param (CatchAll for a {name...} value).
type PathPart struct {
	Literal  string
	Param    int
	IsParam  bool
	CatchAll bool
}

// TransformOptions configure the transforms of one operation.
type TransformOptions struct {
	RequestHeaders  []HeaderOp
	ResponseHeaders []HeaderOp
	// StripPrefix is removed from the forwarded path (at a segment
	// boundary), or Rewrite replaces it; at most one is set.
	StripPrefix string
	Rewrite     []PathPart
}

// Transform returns the step that changes the request forwarded to the
// backend and the headers of the response. The forwarded path is given
// to the proxy with WithUpstreamPath; the matched (and authorized) path
// is unchanged.
func Transform(o TransformOptions) Step {
	return func(next Handler) Handler {
		return HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			x := ExchangeFrom(r.Context())
			if len(o.RequestHeaders) > 0 {
				if x != nil {
					x.RequestHeaderChanged = true
				}
				applyHeaderOps(r.Header, o.RequestHeaders)
			}
			if o.StripPrefix != "" || o.Rewrite != nil {
				if x != nil {
					if up, ok := o.upstreamPath(x); ok {
						r = r.WithContext(context.WithValue(r.Context(), UpstreamPathKey, up))
					}
				}
			}
			if len(o.ResponseHeaders) > 0 {
				w = &headerRewriter{ResponseWriter: w, ops: o.ResponseHeaders}
			}
			return next.ServeHTTP(w, r)
		})
	}
}

func (o *TransformOptions) upstreamPath(x *Exchange) (UpstreamPath, bool) {
	if o.StripPrefix != "" {
		rest, ok := strings.CutPrefix(x.Path, o.StripPrefix)
		if !ok || (rest != "" && rest[0] != '/') {
			return UpstreamPath{}, false
		}
		if rest == "" {
			rest = "/"
		}
		return newUpstreamPath(rest), true
	}
	var b strings.Builder
	for _, part := range o.Rewrite {
		b.WriteByte('/')
		switch {
		case !part.IsParam:
			b.WriteString(part.Literal)
		case part.Param < len(x.Params.Values):
			b.WriteString(x.Params.Values[part.Param])
		}
	}
	p := b.String()
	if p == "" {
		p = "/"
	}
	return newUpstreamPath(p), true
}

// UpstreamPath is the path to forward when a transform changed it: the
// decoded path and its escaped form.
type UpstreamPath struct {
	Path    string
	RawPath string
}

func newUpstreamPath(p string) UpstreamPath {
	var b strings.Builder
	for i, seg := range strings.Split(p, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(url.PathEscape(seg))
	}
	return UpstreamPath{Path: p, RawPath: b.String()}
}

// UpstreamPathKeyType is the type of UpstreamPathKey. A context that answers the key itself
// tells it by a type switch: comparing a key with UpstreamPathKey calls the
// runtime's interface equality.
type UpstreamPathKeyType struct{}

// UpstreamPathKey is the context key under which a transform puts the
// forwarded path, in a context derived from the request's. A context
// type of the gateway's own, which no transform derived, may answer it
// itself (with nil), so that UpstreamPathFrom does not search the
// server's contexts when no transform set one.
var UpstreamPathKey any = UpstreamPathKeyType{}

// UpstreamPathFrom returns the forwarded path set by a transform, if any.
func UpstreamPathFrom(ctx context.Context) (UpstreamPath, bool) {
	up, ok := ctx.Value(UpstreamPathKey).(UpstreamPath)
	return up, ok
}

// headerRewriter applies header operations just before the response
// headers are written.
type headerRewriter struct {
	http.ResponseWriter
	ops  []HeaderOp
	done bool
}

func (w *headerRewriter) apply() {
	if !w.done {
		w.done = true
		applyHeaderOps(w.ResponseWriter.Header(), w.ops)
	}
}

func (w *headerRewriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.apply()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerRewriter) Write(b []byte) (int, error) {
	w.apply()
	return w.ResponseWriter.Write(b)
}

// Flush sends buffered data to the client.
func (w *headerRewriter) Flush() {
	w.apply()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *headerRewriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
