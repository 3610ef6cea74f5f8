package observe

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A status a backend made up gets its class as the code label, so that
// an operation's series stay few; registered codes and 499 keep theirs.
func TestCodeLabel(t *testing.T) {
	for code, want := range map[int]string{
		200: "200", 204: "204", 418: "418", 429: "429", 499: "499", 503: "503",
		299: "2xx", 420: "4xx", 599: "5xx", 600: "6xx", 999: "9xx", 1000: "other", 42: "other",
	} {
		if got := codeLabel(code); got != want {
			t.Errorf("codeLabel(%d) = %q, want %q", code, got, want)
		}
	}
}

// Each status is counted under its own code, whichever came before it
// (the last status's counter is kept apart from the map).
func TestRouteMetrics_CountsEachCode(t *testing.T) {
	m := NewMetrics()
	r := m.Route("a", "op")
	for _, code := range []int{200, 200, 404, 200, 503, 503, 404, 200} {
		r.Observe(code, 0.001)
	}
	for code, want := range map[string]float64{"200": 4, "404": 2, "503": 2} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues("a", "op", code)); got != want {
			t.Errorf("code %s counted %v times, want %v", code, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { r.Observe(200, 0.001) }); n != 0 {
		t.Errorf("Observe allocates %v times, want 0", n)
	}
}
