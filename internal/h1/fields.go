package h1

import (
	"context"
	"net/http"
	"strings"
)

// Field is one header field line, or with Omit a removal.
type Field struct {
	Name, Value string
	// Omit makes the field write nothing: it only keeps the Header's
	// fields of its name from being written, as Header.Del would. A
	// caller can then send a request's Header unchanged, shared with the
	// request it came from, and leave out the fields it must not forward.
	Omit bool
	// Checked says that the caller has checked the field itself, so the
	// transport writes it as it is: Name is a canonical token other than
	// Host, Content-Length, Transfer-Encoding, Trailer and Connection,
	// and Value holds field-value bytes only (no control character but
	// HTAB). A caller sets it for names fixed at configuration time and
	// values it built from checked parts; a field that breaks the promise
	// is sent broken.
	Checked bool
	// Lines makes Value whole field lines, each "Name: value" and its
	// CRLF, written as they are: a caller that sends the same fields
	// for many requests (a caller's identity, say) builds their lines
	// once, and the transport copies them in one piece. A Lines field
	// must be Checked too (each name a canonical token other than the
	// framing fields and Host, each value field-value bytes only): an
	// unchecked one fails the round trip, and the server and
	// WithFieldsSet leave it out. Its Name is empty, so it neither replaces nor omits the
	// Header's fields of its lines' names, which the caller must leave
	// out itself (with Omit fields, or its FieldFilter).
	Lines bool
}

// eachLine calls fn with the name and value of each of the field lines in
// lines (a Lines field's Value).
func eachLine(lines string, fn func(name, value string)) {
	for lines != "" {
		line, rest, _ := strings.Cut(lines, "\r\n")
		lines = rest
		if name, value, ok := strings.Cut(line, ":"); ok {
			fn(name, strings.TrimLeft(value, " \t"))
		}
	}
}

// Fields are header fields that Transport writes after a request's
// Header, each as a line of its own, in order: what setting them in the
// Header would do, without a map for the caller to build and the
// transport to iterate. A field of Header whose name is also among the
// Fields is not written (the Fields replace it, as Header.Set would, or
// remove it, when they only Omit it).
// Names must be canonical; names and values are checked as Header's are,
// unless a Field is marked Checked.
//
// A request carries them when its context's Value(FieldsKey) returns a
// non-nil *Fields (a context type of the caller's own can answer that key
// itself, as with InformationalKey). They must not change until the
// round trip returns. Other transports do not know them: see
// WithFieldsSet.
type Fields []Field

// FieldsKeyType is the type of FieldsKey. A context that answers the key itself
// tells it by a type switch: comparing a key with FieldsKey calls the
// runtime's interface equality.
type FieldsKeyType struct{}

// FieldsKey is the context key under which a request's context carries
// its *Fields.
var FieldsKey any = FieldsKeyType{}

// FieldsFrom returns the Fields that ctx carries, or nil.
func FieldsFrom(ctx context.Context) Fields {
	if f, ok := ctx.Value(FieldsKey).(*Fields); ok && f != nil {
		return *f
	}
	return nil
}

// A FieldFilter tells a Transport which of a request's Header fields to
// write: a proxy that shares its client's Header leaves out the fields it
// must not forward (hop-by-hop, spoofable) without a pass over the Header
// of its own to name them as Omit fields. The Fields are not filtered: a
// Field is written, and keeps the Header's fields of its name out,
// whatever the filter says of its name.
//
// A request carries one when its context's Value(FieldFilterKey) returns
// a non-nil FieldFilter, as with FieldsKey. WithFieldsSet applies it for
// other transports.
type FieldFilter interface {
	// SendField reports whether the Header's fields named name (canonical)
	// are sent. It must not change until the round trip returns.
	SendField(name string) bool
}

// FieldFilterKeyType is the type of FieldFilterKey. A context that answers the key itself
// tells it by a type switch: comparing a key with FieldFilterKey calls the
// runtime's interface equality.
type FieldFilterKeyType struct{}

// FieldFilterKey is the context key under which a request's context
// carries its FieldFilter.
var FieldFilterKey any = FieldFilterKeyType{}

// FieldFilterFrom returns the FieldFilter that ctx carries, or nil.
func FieldFilterFrom(ctx context.Context) FieldFilter {
	f, _ := ctx.Value(FieldFilterKey).(FieldFilter)
	return f
}

// sends reports whether req sends a field named name (canonical): one of
// its Fields, or its Header's unless a Field replaces or omits it or its
// FieldFilter leaves it out.
func sends(req *http.Request, name string) bool {
	_, inHeader := req.Header[name]
	if inHeader {
		if ff := FieldFilterFrom(req.Context()); ff != nil && !ff.SendField(name) {
			inHeader = false
		}
	}
	return FieldsFrom(req.Context()).SendsOver(inHeader, name)
}

// SendsOver reports whether a request with these Fields sends a field
// named name (canonical): one of the Fields, or the Header's (inHeader:
// the Header has one) unless a Field of that name replaces or omits it.
func (f Fields) SendsOver(inHeader bool, name string) bool {
	found := false
	for i := range f {
		if f[i].Name == name && !f[i].Lines {
			if !f[i].Omit {
				return true
			}
			found = true
		}
	}
	return inHeader && !found
}

// has reports whether name is among f's names.
func (f Fields) has(name string) bool {
	for i := range f {
		if f[i].Name == name && !f[i].Lines {
			return true
		}
	}
	return false
}

// WithFieldsSet returns req itself when its context carries no Fields
// and no FieldFilter, else a shallow copy of req whose Header is a copy
// of req.Header with the Fields set in it (each name's values replaced by
// the Fields') and without the fields the FieldFilter leaves out: for a
// transport other than this package's, which writes only Header.
func WithFieldsSet(req *http.Request) *http.Request {
	f := FieldsFrom(req.Context())
	ff := FieldFilterFrom(req.Context())
	if len(f) == 0 && ff == nil {
		return req
	}
	h := make(http.Header, len(req.Header)+len(f))
	for k, vs := range req.Header {
		if !f.has(k) && (ff == nil || ff.SendField(k)) {
			h[k] = vs
		}
	}
	for _, fl := range f {
		switch {
		case fl.Lines:
			if fl.Checked {
				eachLine(fl.Value, func(name, value string) { h[name] = append(h[name], value) })
			}
		case !fl.Omit:
			h[fl.Name] = append(h[fl.Name], fl.Value)
		}
	}
	out := *req
	out.Header = h
	return &out
}
