package gateway

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
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
			if both := !tc.keepID && !tc.keepTP; both != (traceIDOf(tp) == id) {
				t.Errorf("trace ID %q, request ID %q: equal %v, want %v (both new)", traceIDOf(tp), id, !both, both)
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

// putHex64 writes what hex.Encode writes for the word's big-endian bytes.
func TestPutHex64(t *testing.T) {
	words := []uint64{0, 1, 9, 10, 15, 16, 0x0123456789abcdef, 0xfedcba9876543210, 0x9999999999999999, 0xaaaaaaaaaaaaaaaa, ^uint64(0)}
	for i := 0; i < 64; i++ {
		words = append(words, 1<<i, ^uint64(1<<i))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		words = append(words, r.Uint64())
	}
	for _, x := range words {
		var raw [8]byte
		binary.BigEndian.PutUint64(raw[:], x)
		var got [16]byte
		putHex64(got[:], x)
		if want := hex.EncodeToString(raw[:]); string(got[:]) != want {
			t.Fatalf("%#x: got %s, want %s", x, got[:], want)
		}
	}
}
