package h1

import (
	"encoding/binary"
	"unsafe"
)

// A request's head is copied once, as one string that every string of
// the request (method, target, field names and values) lies in. The
// parser checked all of it: its names are tokens, and nothing in it but
// the line ends is a control character. So a string that lies within
// that copy needs no second check when a field is written from it (a
// proxy forwards the client's fields through this package's Transport):
// no Go string can span a line end of it, since none of the strings the
// request holds does, and a string made otherwise (a transform's) lies
// elsewhere and is checked.

// headLenBytes is the length word in front of a head's copy.
const headLenBytes = 8

// copyHead copies head into an allocation that starts with its length,
// and returns the copy as a string and the allocation's start, from which
// headAt finds the string again: one pointer, which a connection can
// publish atomically for its Transport's round trips to read.
func copyHead(head []byte) (string, *byte) {
	buf := make([]byte, headLenBytes+len(head))
	binary.LittleEndian.PutUint64(buf, uint64(len(head)))
	copy(buf[headLenBytes:], head)
	return unsafe.String(&buf[headLenBytes], len(head)), &buf[0]
}

// headAt returns the head that copyHead copied to p, or "" for nil.
func headAt(p *byte) string {
	if p == nil {
		return ""
	}
	n := binary.LittleEndian.Uint64(unsafe.Slice(p, headLenBytes))
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(p), headLenBytes)), int(n))
}

// inHead reports whether v lies within s (a head's copy): then it is a
// field value, or part of one, or part of another string of the request,
// and holds field-value bytes only. An empty v is not in it (and needs no
// check).
func inHead(s, v string) bool {
	if len(v) == 0 || len(s) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	p := uintptr(unsafe.Pointer(unsafe.StringData(v)))
	return p >= start && p-start <= uintptr(len(s)) && uintptr(len(v)) <= uintptr(len(s))-(p-start)
}

// parsedName reports whether k is a whole field name of s (a head's
// copy): it lies within s, starts a line (after a LF) and ends at a
// colon. A part of a value cannot start a line, and a part of a name that
// starts the line and ends at a colon is the whole name (a name holds no
// colon); no string of the request spans a name and its value. So k is a
// name the parser checked.
func parsedName(s, k string) bool {
	if !inHead(s, k) {
		return false
	}
	off := int(uintptr(unsafe.Pointer(unsafe.StringData(k))) - uintptr(unsafe.Pointer(unsafe.StringData(s))))
	end := off + len(k)
	return off > 0 && s[off-1] == '\n' && end < len(s) && s[end] == ':'
}
