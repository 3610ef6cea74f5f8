package gateway

import (
	"regexp"
	"testing"
)

func TestRequestIDs(t *testing.T) {
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	const clientID = "client-id-1"
	const clientTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name           string
		inID, inTP     string
		keepID, keepTP bool
	}{
		{"both the client's", clientID, clientTP, true, true},
		{"new ID", "", clientTP, false, true},
		{"new traceparent", clientID, "00-bad", true, false},
		{"both new", "bad id with spaces", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, tp := requestIDs(tc.inID, tc.inTP, new(idBuf))
			if tc.keepID != (id == tc.inID) {
				t.Errorf("id = %q (client's %q, kept? want %v)", id, tc.inID, tc.keepID)
			}
			if tc.keepTP != (tp == tc.inTP) {
				t.Errorf("traceparent = %q (client's %q, kept? want %v)", tp, tc.inTP, tc.keepTP)
			}
			if !tc.keepID && !hexID.MatchString(id) {
				t.Errorf("new id %q is not 32 hex digits", id)
			}
			if !validTraceParent(tp) || len(tp) != traceParentLen {
				t.Errorf("traceparent %q is not a valid version-00 one", tp)
			}
			if !tc.keepTP && tp[len(tp)-3:] != "-01" {
				t.Errorf("a new trace must be sampled: %q", tp)
			}
		})
	}
	var bufA, bufB idBuf
	a, tpA := requestIDs("", "", &bufA)
	b, tpB := requestIDs("", "", &bufB)
	if a == b || tpA == tpB {
		t.Fatalf("two new IDs are equal: %q, %q", a, tpA)
	}
	if a != string(bufA[:idLen]) || tpA != string(bufA[idLen:]) {
		t.Errorf("the new ID and traceparent are not the buffer's: %q %q", a, tpA)
	}
	var buf idBuf
	if n := testing.AllocsPerRun(100, func() { requestIDs("", "", &buf) }); n > 0 {
		t.Errorf("a new ID and traceparent took %v allocations, want none (the buffer is the request state's)", n)
	}
}
