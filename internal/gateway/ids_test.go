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
			id, tp := requestIDs(tc.inID, tc.inTP)
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
	a, _ := requestIDs("", "")
	b, _ := requestIDs("", "")
	if a == b {
		t.Fatalf("two new IDs are equal: %q", a)
	}
	if n := testing.AllocsPerRun(100, func() { requestIDs("", "") }); n > 1 {
		t.Errorf("a new ID and traceparent took %v allocations, want 1", n)
	}
}
