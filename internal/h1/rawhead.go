package h1

import (
	"context"
	"net/http"
	"strconv"
	"unsafe"
)

// RawHead carries the fields of a response head from Transport to a
// Server's ResponseWriter as the lines to write, without a header map
// built by one and iterated by the other: for a proxy that forwards the
// response it reads.
//
// A request asks for it when its context's Value(RawHeadKey) returns a
// non-nil *RawHead (a context type of the caller's own can answer that
// key itself). For the final response of such a request, other than 101
// Switching Protocols, the transport then fills the RawHead and returns
// the response with an empty Header: the fields are in the RawHead, with
// names in canonical form, except those StripHopByHop leaves out,
// Content-Length (which ContentLength has) and Omit. Of tells whether a
// response's fields are in the RawHead; other transports, and 1xx or 101
// responses, leave it alone. The fields are for writing: only the first
// Content-Type can be read back (ContentType). The empty Header is the
// connection's own map, emptied for its next such response: what a
// caller sets in it lasts until the body is read to its end or closed.
//
// The RawHead must not be used for another round trip, nor changed,
// until the response it holds is written (see the ResponseWriter's
// SetRawHead) or dropped.
type RawHead struct {
	// Omit is a canonical field name the transport leaves out too: a
	// field the proxy sets itself.
	Omit string

	res           *http.Response
	lines         []byte // "Name: value\r\n" for each field kept
	contentLength int64  // the Content-Length field's value, -1 without one
	hasDate       bool
	hasType       bool
	typeAt        [2]int32 // the first Content-Type value in lines
}

// RawHeadKeyType is the type of RawHeadKey. A context that answers the key itself
// tells it by a type switch: comparing a key with RawHeadKey calls the
// runtime's interface equality.
type RawHeadKeyType struct{}

// RawHeadKey is the context key under which a request's context carries
// the *RawHead its response's fields go to.
var RawHeadKey any = RawHeadKeyType{}

// RawHeadFrom returns the RawHead ctx carries, or nil.
func RawHeadFrom(ctx context.Context) *RawHead {
	h, _ := ctx.Value(RawHeadKey).(*RawHead)
	return h
}

// Buffer gives h the memory of b for its lines: a caller's array, so that
// filling h allocates nothing for a head that fits.
func (h *RawHead) Buffer(b []byte) { h.lines = b[:0] }

// Of reports whether h holds the fields of res.
func (h *RawHead) Of(res *http.Response) bool { return res != nil && h.res == res }

// ContentType returns the first Content-Type value, or "". It shares h's
// memory: it is valid until h is filled again.
func (h *RawHead) ContentType() string {
	if !h.hasType {
		return ""
	}
	v := h.lines[h.typeAt[0]:h.typeAt[1]]
	return unsafe.String(unsafe.SliceData(v), len(v))
}

// fill sets h to the fields of response head rh, in b, leaving out the
// kinds in drop and the fields that rh's Connection fields name; their
// names are canonicalized in place.
func (h *RawHead) fill(res *http.Response, rh *responseHead, b []byte, drop uint32) {
	h.res = res
	h.lines = h.lines[:0]
	h.contentLength = rh.contentLength
	h.hasDate, h.hasType = false, false
	named := connectionNamed(rh, b)
	for i, k := range rh.kinds {
		if drop&(1<<k) != 0 {
			continue
		}
		name := rh.fields[i].name.get(b)
		canonicalizeName(name)
		if string(name) == h.Omit || named[string(name)] {
			continue
		}
		v := rh.fields[i].value.get(b)
		switch string(name) {
		case "Date":
			h.hasDate = true
		case "Content-Type":
			if !h.hasType {
				h.hasType = true
				at := len(h.lines) + len(name) + 2
				h.typeAt = [2]int32{int32(at), int32(at + len(v))}
			}
		}
		h.lines = append(h.lines, name...)
		h.lines = append(h.lines, ':', ' ')
		h.lines = append(h.lines, v...)
		h.lines = append(h.lines, '\r', '\n')
	}
}

// statusStrings[code] is "code reason" with the standard reason, where
// there is one.
var statusStrings = func() (t [600]string) {
	for code := range t {
		if text := http.StatusText(code); text != "" {
			t[code] = strconv.Itoa(code) + " " + text
		}
	}
	return t
}()

// statusString returns a response's Status for its status line's code and
// reason (line): a shared string when the reason is the standard one.
func statusString(code int, line []byte) string {
	if code >= 0 && code < len(statusStrings) && statusStrings[code] != "" && string(line) == statusStrings[code] {
		return statusStrings[code]
	}
	return string(line)
}
