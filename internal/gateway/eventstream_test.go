package gateway

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestIsEventStream_SameAsCutAndFold: the early return on length and
// first byte answers what cutting the parameters, trimming space and
// folding case answer, for types that differ in case, space (ASCII and
// Unicode) and letters that fold to ASCII ones (ſ to s, the Kelvin sign
// to k), and for random strings of such pieces.
func TestIsEventStream_SameAsCutAndFold(t *testing.T) {
	ref := func(ct string) bool {
		base, _, _ := strings.Cut(ct, ";")
		return strings.EqualFold(strings.TrimSpace(base), "text/event-stream")
	}
	cases := []string{
		"", "t", "text/event-stream", "TEXT/EVENT-STREAM", "text/event-stream; charset=utf-8",
		" text/event-stream", "\ttext/event-stream ", "\vtext/event-stream", "\u00a0text/event-stream",
		"\u0085text/event-stream", "\u3000Text/Event-Stream", "text/event-\u017ftream", "text/event-stream\u212a",
		"application/json", "text/plain", "text/event-strea", "xtext/event-stream", "ttext/event-stream",
	}
	pieces := []string{"t", "T", "e", "x", "/", "-", "s", "r", "a", "m", "v", "n", " ", "\t", ";", "\u00a0", "\u017f", "\u212a", "text/", "event-", "stream", "text/event-stream"}
	rng := rand.New(rand.NewPCG(6, 7))
	for range 50000 {
		var b strings.Builder
		for range rng.IntN(8) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		cases = append(cases, b.String())
	}
	matched := 0
	for _, ct := range cases {
		if got, want := isEventStream(ct), ref(ct); got != want {
			t.Fatalf("isEventStream(%q) = %v, want %v", ct, got, want)
		} else if got {
			matched++
		}
	}
	if matched < 10 {
		t.Errorf("only %d of the cases are event streams: the comparison proves little", matched)
	}
}
