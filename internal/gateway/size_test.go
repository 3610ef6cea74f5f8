package gateway

import (
	"testing"
	"unsafe"
)

// TestRequestStateSize: the request's state, allocated once per request,
// fills its size class (2688 bytes, with the allocator's 8-byte header),
// so that a field added to it, or a buffer grown, is a decision: it
// takes the next class (3072), about 400 more bytes to clear per request.
func TestRequestStateSize(t *testing.T) {
	const class, header = 2688, 8
	if n := unsafe.Sizeof(request{}); n+header > class {
		t.Errorf("the request's state is %d bytes, over its %d-byte size class: see forwardState's buffers", n, class)
	}
}
